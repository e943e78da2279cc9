"""Liveness endpoint for load balancers, orchestrators and the generated tests."""

from fastapi import APIRouter

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """Answer 200 while the process can serve requests."""
    return {"status": "ok"}
