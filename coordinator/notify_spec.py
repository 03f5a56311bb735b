"""The ``notify`` block of the spec: where slogate tells people what happened.

Its URLs and tokens are secrets (a Slack incoming webhook's URL is its credential): the spec
names where to read them (``urlEnv``/``urlFile``, ``tokenEnv``/``tokenFile``), never the values,
since the spec is echoed in results.json and in the pull request's body.

Example::

    notify:
      - kind: slack                         # a Slack-compatible incoming webhook
        urlEnv: SLACK_WEBHOOK_URL
      - kind: webhook                       # a generic JSON webhook
        urlFile: /var/run/secrets/hook/url
        tokenEnv: HOOK_TOKEN                # sent as Authorization: Bearer
        on: [promotion, revert]
        retries: 5
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

Event = Literal["verdict", "promotion", "verification", "revert"]


def _all_events() -> list[Event]:
    return ["verdict", "promotion", "verification", "revert"]


class NotifyTarget(BaseModel):
    """One receiver of notifications: a Slack-compatible or a generic JSON webhook."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid",
                              frozen=True, allow_inf_nan=False)

    kind: Literal["slack", "webhook"] = Field(description="slack: a Slack-compatible incoming "
                                              "webhook ({text, blocks}); webhook: slogate's JSON.")
    url_env: str | None = Field(None, min_length=1, description="Environment variable holding "
                                "the webhook URL (a secret: never in the spec).")
    url_file: str | None = Field(None, min_length=1, description="File holding the webhook URL.")
    token_env: str | None = Field(None, min_length=1, description="Environment variable holding "
                                  "a token sent as 'Authorization: Bearer' (webhook only).")
    token_file: str | None = Field(None, min_length=1, description="File holding that token.")
    on: list[Event] = Field(default_factory=lambda: _all_events(), min_length=1,
                            description="The events sent: verdict, promotion, verification, "
                            "revert (default: all).")
    retries: int = Field(3, ge=0, le=10, description="Attempts after the first on a 5xx, 429 "
                         "or transport error, with exponential backoff.")
    timeout_s: float = Field(10.0, gt=0, le=120, description="Seconds each attempt may take.")

    @model_validator(mode="after")
    def _one_url_source(self) -> NotifyTarget:
        if (self.url_env is None) == (self.url_file is None):
            raise ValueError("give exactly one of urlEnv, urlFile (the URL is a secret: it is "
                             "never written in the spec)")
        if self.token_env is not None and self.token_file is not None:
            raise ValueError("give at most one of tokenEnv, tokenFile")
        if self.kind == "slack" and (self.token_env or self.token_file):
            raise ValueError("a slack webhook takes no token: its URL is the credential")
        return self
