"""Request bodies of the automations API that are not automations themselves (Prefect's JSON)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from temporal_automations.domain.automations import Automation


class Lenient(BaseModel):
    # Prefect's clients send filter fields we do not use (e.g. `operator`); they are ignored.
    model_config = ConfigDict(extra="ignore")


class AutomationSort(StrEnum):
    CREATED_DESC = "CREATED_DESC"
    UPDATED_DESC = "UPDATED_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"


class NameFilter(Lenient):
    any_: list[str] | None = None


class TagsFilter(Lenient):
    all_: list[str] | None = None
    any_: list[str] | None = None


class CreatedFilter(Lenient):
    before_: datetime | None = None


class AutomationFilter(Lenient):
    name: NameFilter | None = None
    tags: TagsFilter | None = None
    created: CreatedFilter | None = None

    def matches(self, automation: Automation) -> bool:
        if self.name and self.name.any_ is not None and automation.name not in self.name.any_:
            return False
        if self.tags:
            tags = set(automation.tags)
            if self.tags.all_ and not tags.issuperset(self.tags.all_):
                return False
            if self.tags.any_ and not tags.intersection(self.tags.any_):
                return False
        before = self.created.before_ if self.created else None
        return before is None or automation.created < before


class AutomationFilterRequest(Lenient):
    # Prefect's client sends `"sort": null`; null means the default.
    sort: AutomationSort | None = AutomationSort.NAME_ASC
    offset: int | None = Field(0, ge=0)
    limit: int | None = Field(None, ge=0, le=1000)
    automations: AutomationFilter | None = None


class AutomationCountRequest(Lenient):
    automations: AutomationFilter | None = None


class EnabledPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool  # `0` or "no" is a 422, as the schema says, not a guess
