"""streamone: map error replies to the gateway's problem schema (docs/contract.md §3).

StreamOne answers HTTP 200 with ``{"header": {"status": S, "statusmessage": ...}, "body": ...}``
(docs/upstreams.md § streamone); ``S != 0`` is an error hidden in a 200.
``upstream_code`` is the status name (:data:`STATUS_NAMES`, else ``STATUS_<n>``);
``detail`` is ``statusmessage`` when safe.

General codes, one by one (:data:`GENERAL`):

====  ======================  ====================================================
1     INTERNAL_ERROR          ``upstream_error``
2     TIMESTAMP_OUT_OF_RANGE  ``upstream_auth_failed``, logged at error level (clock)
3     AUTHENTICATION_FAILED   ``upstream_auth_failed``, logged at error level (keys)
4     ACCESS_DENIED           ``forbidden``
5     INVALID_ACTION          ``not_found`` (no such command or action)
6     INPUT_ERROR             ``validation_failed``
7     UNKNOWN_PARAMETER       ``validation_failed``
8     RATE_LIMITED            ``rate_limited``, source upstream, ``retry_after``
9     INVALID_TIMEZONE        ``validation_failed``
10    API_IN_READONLY_MODE    ``upstream_unavailable``
90    INVALID_ACTION_TYPE     ``upstream_error`` (StreamOne's own logic error)
====  ======================  ====================================================

Domain codes (100 and up) go by name: ``*_NOT_FOUND*`` -> ``not_found``,
``*ALREADY*`` and ``*_EXISTS`` -> ``conflict``, ``*_NOT_PERMITTED`` ->
``forbidden``, the rest -> ``validation_failed``. 282 SESSION_NOT_FOUND after
the driver's one re-login is ``upstream_auth_failed``.

A reply without the envelope maps from its HTTP status; a 2xx without it is
not an error and passes through. The envelope decides even on a non-2xx HTTP
status, since it is the more precise of the two.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.core.errormap import generic_problem, parse_json, safe_message, upstream_problem
from gateway.core.messages import UpstreamReply
from gateway.core.problem import Problem

NAME = "streamone"
# Status 8 comes after repeated invalid authentication; StreamOne does not say
# for how long (open). The stand-in forgets failures after 60 s.
RATE_LIMITED_RETRY_AFTER = 60.0

STATUS_NAMES: dict[int, str] = {
    0: "OK",
    1: "INTERNAL_ERROR",
    2: "TIMESTAMP_OUT_OF_RANGE",
    3: "AUTHENTICATION_FAILED",
    4: "ACCESS_DENIED",
    5: "INVALID_ACTION",
    6: "INPUT_ERROR",
    7: "UNKNOWN_PARAMETER",
    8: "RATE_LIMITED",
    9: "INVALID_TIMEZONE",
    10: "API_IN_READONLY_MODE",
    90: "INVALID_ACTION_TYPE",
    100: "JOB_NOT_FOUND",
    101: "WORKER_NOT_FOUND",
    102: "WORKER_INVALID",
    103: "JOB_INVALID_STATUS",
    104: "WORKER_WRONG_SERVER",
    105: "LIVE_TASK_NOT_FOUND",
    106: "LIVE_TASK_INVALID_STATUS",
    107: "WORKER_ALREADY_HAS_TYPE",
    108: "WORKER_DOES_NOT_HAVE_TYPE",
    109: "SERVER_ALREADY_HAS_WORKER",
    110: "FILE_NOT_FOUND",
    111: "FILE_WRONG_EXTENSION",
    112: "FILE_WRONG_SIZE",
    113: "FILE_LOCATION_NOT_FOUND",
    114: "FILE_SERVER_NOT_FOUND",
    115: "FILE_MOUNT_NOT_FOUND",
    116: "FILE_MOUNT_NOT_ON_SERVER",
    117: "FILE_LOCATION_EXISTS",
    118: "FILE_NO_SUITABLE_MOUNT",
    119: "FILE_COPY_FAILED",
    120: "ITEM_NOT_FOUND",
    121: "ITEM_INVALID_ACCOUNT",
    122: "ITEM_FILE_NOT_FOUND",
    123: "ITEM_FILE_WRONG_ITEM",
    124: "ITEM_NO_FILES",
    125: "ITEM_ALREADY_IN_CATEGORY",
    126: "ITEM_NOT_IN_CATEGORY",
    130: "SERVER_NOT_FOUND",
    131: "SERVER_MISSING_ROLE",
    132: "SERVER_NOT_PERMITTED",
    133: "SERVER_ROLE_ALREADY_ASSIGNED",
    134: "SERVER_ROLE_NOT_FOUND",
    135: "SERVER_ROLE_NOT_ASSIGNED",
    140: "FILE_CATEGORY_NOT_FOUND",
    141: "FILE_EMPTY",
    142: "FILE_NOT_EMPTY",
    143: "FILE_WRONG_MD5",
    144: "FILE_EXTERNAL_MOUNT_NOT_FOUND",
    145: "FILE_NOT_FOUND_ON_EXTERNAL_MOUNT",
    150: "EVENT_NOT_FOUND",
    160: "EVENT_HOOK_NOT_FOUND",
    161: "EVENT_HOOK_INVALID_TARGET",
    170: "EVENT_HOOK_TYPE_NOT_FOUND",
    171: "EVENT_HOOK_TYPE_INVALID",
    180: "EVENT_HOOK_LOG_NOT_FOUND",
    181: "EVENT_HOOK_LOG_WRONG_TYPE",
    182: "EVENT_HOOK_LOG_CANNOT_HANDLE",
    190: "UPLOAD_TOKEN_NOT_FOUND",
    200: "TRANSCODE_PROFILE_NOT_FOUND",
    201: "TRANSCODE_SOURCE_HAS_NO_VIDEO",
    202: "TRANSCODE_SOURCE_HAS_NO_AUDIO",
    210: "CATEGORY_NOT_FOUND",
    211: "CATEGORY_PARENT_WRONG",
    212: "CATEGORY_HAS_LINKED_ITEMS",
    220: "PLAYLIST_NOT_FOUND",
    230: "PLAYLIST_ENTRY_NOT_FOUND",
    240: "LIVESTREAM_NOT_FOUND",
    241: "LIVESTREAM_ALREADY_STARTED",
    242: "LIVESTREAM_NOT_YET_STARTED",
    243: "LIVESTREAM_TYPE_NOT_FOUND",
    250: "CUSTOMER_NOT_FOUND",
    260: "APPLICATION_NOT_FOUND",
    261: "APPLICATION_NOT_PERMITTED",
    262: "APPLICATION_ROLE_ALREADY_ASSIGNED",
    263: "APPLICATION_ROLE_NOT_ASSIGNED",
    270: "ROLE_NOT_FOUND",
    271: "TOKEN_NOT_FOUND",
    272: "ROLE_ALREADY_HAS_TOKEN",
    273: "ROLE_DOES_NOT_HAVE_TOKEN",
    274: "ROLE_NOT_PERMITTED",
    275: "ROLE_STILL_USED",
    280: "SESSION_NEEDS_V2_HASH",
    281: "SESSION_INVALID",
    282: "SESSION_NOT_FOUND",
    290: "ACCOUNT_NOT_FOUND",
    291: "ACCOUNT_ALREADY_HAS_PROFILE_GROUP",
    292: "ACCOUNT_DOES_NOT_HAVE_PROFILE_GROUP",
    300: "PROFILE_GROUP_NOT_FOUND",
    310: "USER_NOT_FOUND",
    311: "USER_NOT_PERMITTED",
    312: "USER_ROLE_ALREADY_ASSIGNED",
    313: "USER_ROLE_NOT_ASSIGNED",
    314: "USER_PASSWORD_CHANGE_INVALID",
    315: "USER_PASSWORD_RESET_NOT_FOUND_OR_EXPIRED",
    316: "USER_USERNAME_ALREADY_EXISTS",
    320: "SCHEDULE_NOT_FOUND",
    325: "SCHEDULE_ALREADY_HAS_CATEGRY",  # sic, as StreamOne spells it
    326: "SCHEDULE_DOES_NOT_HAVE_CATEGRY",  # sic
    330: "PLAYER_NOT_FOUND",
    331: "PLAYER_ALREADY_HAS_ORIGIN",
    332: "PLAYER_DOES_NOT_HAVE_ORIGIN",
    340: "ORIGIN_NOT_FOUND",
    350: "PLATFORM_SUPPORT_TASK_NOT_FOUND",
    360: "JOB_TYPE_NOT_FOUND",
    361: "LIVE_TASK_TYPE_NOT_FOUND",
    370: "PROFILE_NOT_FOUND",
    371: "ITEM_FILE_FORMAT_NOT_FOUND",
    372: "ITEM_TYPE_NOT_FOUND",
    373: "AUDIO_CODEC_NOT_FOUND",
    374: "VIDEO_CODEC_NOT_FOUND",
    375: "VIDEO_CODEC_PROFILE_NOT_FOUND",
    376: "PROFILE_IS_OF_SPECIFIC_ACCOUNT",
    377: "PROFILE_GROUP_ALREADY_HAS_PROFILE",
    378: "PROFILE_GROUP_DOES_NOT_HAVE_PROFILE",
    379: "PROFILE_INVALID_HEIGHT_FOR_INTERLACED",
    380: "SECURITY_PROFILE_NOT_FOUND",
    381: "SECURITY_RULE_NOT_VALID",
    382: "SECURITY_RULE_NOT_FOUND",
    390: "STATS_RANGE_INVALID",
    391: "STATS_RESOLUTION_INVALID",
    392: "STATS_SCOPE_INVALID",
    400: "CLIENT_GROUP_NOT_FOUND",
    401: "CLIENT_NOT_FOUND",
    402: "CLIENT_GROUP_ALREADY_HAS_CLIENT",
    403: "CLIENT_GROUP_DOES_NOT_HAVE_CLIENT",
    410: "RECORD_TASK_NOT_FOUND",
    411: "RECORD_TASK_INVALID_STATUS",
    420: "FTP_USER_ALREADY_EXISTS",
    421: "FTP_USER_NOT_FOUND",
    430: "SSO_SERVICE_NOT_FOUND",
    431: "USER_ALREADY_HAS_SSO_TOKEN",
    432: "USER_HAS_NO_SSO_TOKEN",
    433: "SSO_RESPONSE_INVALID",
    434: "SSO_TOKEN_UNKNOWN",
    440: "ITEM_NO_POSTER_ARCHIVE",
    441: "ITEM_POSTER_INDEX_NOT_FOUND",
}


def status_name(status: int) -> str:
    """The name of a StreamOne status: ``120`` -> ``ITEM_NOT_FOUND``, ``999`` -> ``STATUS_999``."""
    return STATUS_NAMES.get(status, f"STATUS_{status}")


GENERAL: dict[int, str] = {
    1: "upstream_error",
    2: "upstream_auth_failed",
    3: "upstream_auth_failed",
    4: "forbidden",
    5: "not_found",
    6: "validation_failed",
    7: "validation_failed",
    8: "rate_limited",
    9: "validation_failed",
    10: "upstream_unavailable",
    90: "upstream_error",
    282: "upstream_auth_failed",  # the session is the gateway's; one re-login was tried
}
LOUD = frozenset({2, 3})  # our clock or our credentials are wrong: an operator must act
# A 2xx that opens with a status-0 header is a success: no need to parse a big body.
_FAST_OK = re.compile(rb'^\s*\{\s*"header"\s*:\s*\{[^{}]*"status"\s*:\s*0\s*[,}]')


def code_for(status: int) -> str:
    """The problem code for a non-zero StreamOne status."""
    if status in GENERAL:
        return GENERAL[status]
    name = status_name(status)
    if "NOT_FOUND" in name:
        return "not_found"
    if "ALREADY" in name or name.endswith("_EXISTS"):
        return "conflict"
    if name.endswith("_NOT_PERMITTED"):
        return "forbidden"
    return "validation_failed"


def _status(body: Any) -> int | None:
    """``header.status`` of an envelope, or None when the body is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("header"), dict):
        return None
    value = body["header"].get("status")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e9:
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdecimal() and len(value) < 10:
        return int(value.strip())
    return None


def _envelope_problem(reply: UpstreamReply, status: int, header: dict[str, Any]) -> Problem:
    name = status_name(status)
    code = code_for(status)
    text = safe_message(header.get("statusmessage"))
    detail = f"{NAME} status {status} {name}" + (f": {text}" if text else "")
    return upstream_problem(
        NAME,
        reply,
        code,
        detail,
        upstream_code=name,
        retry_after=RATE_LIMITED_RETRY_AFTER
        if status == 8 and not reply.header("Retry-After")
        else None,
        loud=status in LOUD,
    )


def parse_error(reply: UpstreamReply) -> Problem | None:
    if reply.status < 400:
        if not 200 <= reply.status < 300 or reply.truncated or not reply.body:
            return None
        if _FAST_OK.match(reply.body[:4096]):
            return None
        body = parse_json(reply.body, limit=None)
    else:
        body = None if reply.truncated else parse_json(reply.body)
    status = _status(body)
    if status is not None and status != 0:
        return _envelope_problem(reply, status, body["header"])
    if reply.status < 400:
        return None
    return generic_problem(NAME, reply)
