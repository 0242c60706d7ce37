"""Example bodies from the API documents in /work/shared/api-docs, verbatim, in one place.

JSON `null`/`true`/`false` are written as Python values; `...`-style placeholders inside
strings are kept as the documents have them. The parsers' table tests, the fake servers and
their self-tests all check against these. Shared objects: copy before changing one.
"""

from __future__ import annotations

from typing import Any

# kie-jobs-qwen-image-edit.md ------------------------------------------------------------------
JOBS_REQUEST: dict[str, Any] = {  # the `"num_images": undefined,` line is not JSON: left out
    "model": "qwen/image-edit",
    "input": {
        "prompt": "",
        "image_url": "https://file.aiquickdraw.com/custom-page/akr/section-images/1755603225969i6j87xnw.jpg",
        "acceleration": "none",
        "image_size": "landscape_4_3",
        "num_inference_steps": 25,
        "seed": 42,
        "guidance_scale": 4,
        "sync_mode": False,
        "enable_safety_checker": True,
        "output_format": "png",
        "negative_prompt": "blurry, ugly",
    },
}
JOBS_CREATED: dict[str, Any] = {
    "code": 200,
    "msg": "success",
    "data": {"taskId": "281e5b0*********************f39b9"},
}
JOBS_RECORD: dict[str, Any] = {  # recordInfo, state waiting
    "code": 200,
    "msg": "success",
    "data": {
        "taskId": "281e5b0*********************f39b9",
        "model": "qwen/image-edit",
        "state": "waiting",
        "param": '{"model":"qwen/image-edit","input":{"prompt":"","image_url":"https://file.aiquickdraw.com/custom-page/akr/section-images/1755603225969i6j87xnw.jpg","acceleration":"none","image_size":"landscape_4_3","num_inference_steps":25,"seed":42,"guidance_scale":4,"sync_mode":false,"enable_safety_checker":true,"output_format":"png","negative_prompt":"blurry, ugly"}}',  # noqa: E501
        "resultJson": '{"resultUrls":["https://file.aiquickdraw.com/custom-page/akr/section-images/175560323518040u3dt88.jpg"]}',
        "failCode": None,
        "failMsg": None,
        "costTime": None,
        "completeTime": None,
        "createTime": 1757584164490,
    },
}

# kie-playground-qwen-image-edit.md ------------------------------------------------------------
PLAYGROUND_REQUEST: dict[str, Any] = {
    "model": "qwen/image-edit",
    "callBackUrl": "https://your-domain.com/api/callback",
    "input": {
        "prompt": "Add beautiful flowers to the garden",
        "image_url": "https://file.aiquickdraw.com/custom-page/akr/section-images/1755603225969i6j87xnw.jpg",
        "acceleration": "none",
        "image_size": "landscape_4_3",
        "num_inference_steps": 25,
        "guidance_scale": 4,
        "sync_mode": False,
        "enable_safety_checker": True,
        "output_format": "png",
        "negative_prompt": "blurry, ugly",
    },
}
PLAYGROUND_CREATED: dict[str, Any] = {
    "code": 200,
    "message": "success",
    "data": {"taskId": "task_12345678"},
}
PLAYGROUND_RECORD: dict[str, Any] = {
    "code": 200,
    "message": "success",
    "data": {
        "taskId": "task_12345678",
        "model": "qwen/image-edit",
        "state": "success",
        "param": '{"model":"qwen/image-edit","input":{...}}',
        "resultJson": '{"resultUrls":["https://example.com/generated-image.jpg"]}',
        "failCode": "",
        "failMsg": "",
        "completeTime": 1698765432000,
        "createTime": 1698765400000,
        "updateTime": 1698765432000,
    },
}
PLAYGROUND_SUCCESS_CALLBACK: dict[str, Any] = {
    "code": 200,
    "data": {
        "completeTime": 1755599644000,
        "consumeCredits": 100,
        "costTime": 8,
        "createTime": 1755599634000,
        "model": "qwen/image-edit",
        "param": '{"callBackUrl":"...","model":"qwen/image-edit","input":{...}}',
        "remainedCredits": 2510330,
        "resultJson": '{"resultUrls":["https://example.com/generated-image.jpg"]}',
        "state": "success",
        "taskId": "e989621f54392584b05867f87b160672",
        "updateTime": 1755599644000,
    },
    "msg": "Playground task completed successfully.",
}
PLAYGROUND_FAILURE_CALLBACK: dict[str, Any] = {
    "code": 501,
    "data": {
        "completeTime": 1755597081000,
        "consumeCredits": 0,
        "costTime": 0,
        "createTime": 1755596341000,
        "failCode": "500",
        "failMsg": "Internal server error",
        "model": "qwen/image-edit",
        "param": "{...}",
        "remainedCredits": 2510430,
        "state": "fail",
        "taskId": "bd3a37c523149e4adf45a3ddb5faf1a8",
        "updateTime": 1755597097000,
    },
    "msg": "Playground task failed.",
}

# apikley-qwen-image-edit-openapi.txt (the request `example:` and the 200 answer) --------------
APIKLEY_REQUEST: dict[str, Any] = {
    "model": "qwen/image-edit",
    "callBackUrl": "https://your-domain.com/api/callback",
    "input": {
        "prompt": "",
        "image_url": "https://file.aiquickdraw.com/custom-page/akr/section-images/1755603225969i6j87xnw.jpg",
        "acceleration": "none",
        "image_size": "landscape_4_3",
        "num_inference_steps": 25,
        "guidance_scale": 4,
        "sync_mode": False,
        "enable_safety_checker": True,
        "output_format": "png",
        "negative_prompt": "blurry, ugly",
    },
}
APIKLEY_CREATED: dict[str, Any] = {
    "code": 200,
    "msg": "success",
    "data": {"taskId": "task_qwen_1765179676651"},
}

# kie-facts.md: the credit answer's `data` is a number -----------------------------------------
CREDIT_ANSWER: dict[str, Any] = {"code": 200, "msg": "success", "data": 100}

# kie-4o-image.md ------------------------------------------------------------------------------
GPT4O_REQUEST_T2I: dict[str, Any] = {
    "prompt": "A serene mountain landscape at sunset with a lake reflecting the orange sky, photorealistic style",  # noqa: E501
    "size": "1:1",
    "nVariants": 1,
    "callBackUrl": "https://your-domain.com/4o-callback",
}
GPT4O_REQUEST_MASK: dict[str, Any] = {  # "image editing with mask"
    "prompt": "Replace the masked area with a beautiful garden",
    "filesUrl": ["https://public-url/original.jpg"],
    "maskUrl": "https://public-url/mask.png",
    "size": "3:2",
    "callBackUrl": "https://your-domain.com/4o-callback",
}
GPT4O_REQUEST_VARIANTS: dict[str, Any] = {
    "prompt": "Create artistic variations of this image",
    "filesUrl": ["https://public-url/source.jpg"],
    "nVariants": 3,
    "size": "1:1",
    "callBackUrl": "https://your-domain.com/4o-callback",
}
GPT4O_CREATED: dict[str, Any] = {
    "code": 200,
    "msg": "success",
    "data": {"taskId": "task_4o_abc123"},
}
GPT4O_RECORD_RUNNING: dict[str, Any] = {
    "code": 200,
    "msg": "success",
    "data": {
        "taskId": "task_4o_abc123",
        "successFlag": 0,
        "progress": "0.50",
        "response": None,
        "createTime": "2024-01-15 10:30:00",
    },
}
GPT4O_RECORD_DONE: dict[str, Any] = {
    "code": 200,
    "msg": "success",
    "data": {
        "taskId": "task_4o_abc123",
        "successFlag": 1,
        "progress": "1.00",
        "response": {"result_urls": ["https://example.com/generated-image.png"]},
        "completeTime": "2024-01-15 10:35:00",
        "createTime": "2024-01-15 10:30:00",
    },
}
GPT4O_DOWNLOAD_ANSWER: dict[str, Any] = {
    "code": 200,
    "msg": "success",
    "data": "https://tempfile.aiquickdraw.com/.../direct-download?...",
}
GPT4O_SUCCESS_CALLBACK: dict[str, Any] = {
    "code": 200,
    "data": {"taskId": "task_4o_abc123", "info": {"result_urls": ["https://.../image.png"]}},
}
GPT4O_FAILURE_CALLBACK: dict[str, Any] = {
    "code": 400,
    "msg": "Generation failed, please try again or contact support",
    "data": None,
}

# odkkk-qwen-image-edit-openapi.txt ------------------------------------------------------------
ODKKK_REQUEST: dict[str, Any] = {  # the image_edit example plus image_urls/callback_url examples
    "model": "qwen-image-edit",
    "prompt": "Replace the background of this image",
    "image_urls": ["https://example.com/image1.png", "https://example.com/image2.png"],
    "callback_url": "https://your-domain.com/webhooks/image-task-completed",
}
ODKKK_CREATED: dict[str, Any] = {  # ImageGenerationResponse from the schema's `example:` values
    "created": 1757156493,
    "id": "task-unified-1757156493-imcg5zqt",
    "model": "qwen-image-edit",
    "object": "image.generation.task",
    "progress": 0,
    "status": "pending",
    "task_info": {"can_cancel": True, "estimated_time": 30},
    "type": "image",
    "usage": {"billing_rule": "per_call", "credits_reserved": 1, "user_group": "default"},
}
ODKKK_ERRORS: dict[int, dict[str, Any]] = {  # the example of every documented error status
    400: {
        "error": {
            "code": 400,
            "message": "Invalid request format",
            "type": "invalid_request_error",
            "param": "model",
        }
    },
    401: {
        "error": {
            "code": 401,
            "message": "Invalid authentication credentials",
            "type": "authentication_error",
        }
    },
    403: {
        "error": {
            "code": 403,
            "message": "Access denied for this model",
            "type": "permission_error",
            "param": "model",
        }
    },
    404: {
        "error": {
            "code": 404,
            "message": "Specified model not found",
            "type": "not_found_error",
            "param": "model",
            "fallback_suggestion": "qwen-image-edit",
        }
    },
    429: {
        "error": {
            "code": 429,
            "message": "Rate limit exceeded",
            "type": "rate_limit_error",
            "fallback_suggestion": "retry after 60 seconds",
        }
    },
    500: {
        "error": {
            "code": 500,
            "message": "Internal server error",
            "type": "internal_server_error",
            "fallback_suggestion": "try again later",
        }
    },
    502: {
        "error": {
            "code": 502,
            "message": "Bad gateway",
            "type": "upstream_error",
            "fallback_suggestion": "try again later",
        }
    },
    503: {
        "error": {
            "code": 503,
            "message": "Service temporarily unavailable",
            "type": "service_unavailable_error",
            "fallback_suggestion": "retry after 30 seconds",
        }
    },
}
