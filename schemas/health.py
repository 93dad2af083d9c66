"""What readiness answers: the service is ready, and (with a replica) how the replica is doing."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ReplicaReadiness(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    state: Literal["streaming", "lagging", "down"] = Field(
        description="`streaming`: it serves reads; `lagging`: more than DB_REPLICA_MAX_LAG_S "
        "behind, `down`: unreachable or not replaying; in both, reads go to the primary."
    )
    lag_s: float | None = Field(
        description="Seconds of commits the replica may be missing, at most; null if unknown."
    )


class Readiness(BaseModel):
    status: Literal["ready"]
    replica: ReplicaReadiness | None = Field(
        default=None, description="Only when a replica is configured (DATABASE_READ_URL)."
    )
