"""The edit lifecycle, one module per phase; `service.EditService` is its surface.

No Telegram or HTTP here (a test guards it): photos come through a `PhotoSource`, results and
failures leave through a `Notifier`, providers sit behind the `Provider` protocol.
"""
