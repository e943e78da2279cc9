"""Liveness endpoint for load balancers and orchestrators: the first example router."""

from fastapi import APIRouter

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Answer 200 while the process can serve requests.

    ``async``: it runs on the event loop, so it answers even when slow ``def`` routes
    fill the thread pool, and stops answering when the loop itself is stuck, which is
    what a liveness probe should see.
    """
    return {"status": "ok"}
