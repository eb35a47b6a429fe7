"""Rocket.Chat compatibility profiles: what a CRM written against one server era expects.

A profile selects every rule that differs between Rocket.Chat's server eras, each read from
the server code named beside it (`apps/meteor/app/livechat/server/...` unless said):

- `rocketchat-2023` (default): the seed's servers, early 2023 (`hooks/sendToCRM.js@2fc7dd82`,
  `lib/Livechat.js@01a95b55`), and the documentation page's retry rule;
- `rocketchat-7`: current 7.x servers (`hooks/sendToCRM.ts@0e6a159`, `lib/LivechatTyped.ts`'s
  `getLivechatRoomGuestInfo`, `lib/webhooks.ts@028b96fb`, `lib/closeRoom.ts@0165805f`).

Pure: no Kafka, no HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CompatName = Literal["rocketchat-2023", "rocketchat-7"]
RetryRule = Literal["documented", "rocketchat-7"]


@dataclass(frozen=True)
class Profile:
    name: CompatName
    # `visitor.email`/`phone`: `null` right after `username` and filled in when the visitor
    # has some (Livechat.js `getLivechatRoomGuestInfo`), or absent when empty and added last
    # (LivechatTyped.ts: `if (visitor.visitorEmails?.length) postData.visitor.email = ...`).
    contacts_as_null: bool
    # `agent.email`: `null` before `customFields`, then the first address (Livechat.js), or
    # added after `customFields` only when the agent has an address (LivechatTyped.ts).
    agent_email_as_null: bool
    # Each message's `rid` (after `ts`) and `_updatedAt` (last): sendToCRM.ts only.
    message_rid_and_updated_at: bool
    # `departmentId` on `LivechatSessionStart`: sendToCRM.js's switch misspells the case
    # (`LivechatSessionStarted`), so the 2023 body has none.
    start_has_department: bool
    # A visitor's `Message` needs `Livechat_webhook_on_agent_message` too (sendToCRM.js's
    # afterSaveMessage checks both settings for a visitor message), or only its own setting.
    visitor_message_needs_agent_setting: bool
    # The closing comment is its own `Message` with `closingMessage: true` (sendToCRM.js: the
    # close sends it through `sendMessage`, whose afterSaveMessage hook fires), or a system
    # message with no webhook (closeRoom.ts saves it without the hooks).
    closing_message_webhook: bool
    # What a 200 answer becomes: the parsed body's `data` property (sendToCRM.js:
    # `response.data.data`), or the raw text of any 200 answer, an empty one included,
    # replacing the old value (sendToCRM.ts + webhooks.ts).
    crm_data_from_data_property: bool
    # Retries: the documentation page's 10 retries 10 s apart on any non-200, or 5 POSTs in
    # all `4 x Livechat_http_timeout` apart, only 5xx, 429 and network errors (webhooks.ts).
    retries: int
    retry_delay_timeouts: float | None  # delay as a multiple of the HTTP timeout, or None
    retry_delay_s: float
    retry_rule: RetryRule


ROCKETCHAT_2023 = Profile(
    name="rocketchat-2023",
    contacts_as_null=True,
    agent_email_as_null=True,
    message_rid_and_updated_at=False,
    start_has_department=False,
    visitor_message_needs_agent_setting=True,
    closing_message_webhook=True,
    crm_data_from_data_property=True,
    retries=10,
    retry_delay_timeouts=None,
    retry_delay_s=10.0,
    retry_rule="documented",
)

ROCKETCHAT_7 = Profile(
    name="rocketchat-7",
    contacts_as_null=False,
    agent_email_as_null=False,
    message_rid_and_updated_at=True,
    start_has_department=True,
    visitor_message_needs_agent_setting=False,
    closing_message_webhook=False,
    crm_data_from_data_property=False,
    retries=4,
    retry_delay_timeouts=4.0,
    retry_delay_s=20.0,
    retry_rule="rocketchat-7",
)

PROFILES: dict[str, Profile] = {p.name: p for p in (ROCKETCHAT_2023, ROCKETCHAT_7)}


def profile_named(name: str) -> Profile:
    return PROFILES[name]


def retry_delay_s(profile: Profile, http_timeout_s: float) -> float:
    if profile.retry_delay_timeouts is None:
        return profile.retry_delay_s
    return profile.retry_delay_timeouts * http_timeout_s
