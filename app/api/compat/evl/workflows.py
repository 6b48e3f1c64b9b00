"""The evl API's workflow route: a stub there too, which validates the workflow and does nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Request
from fastapi.responses import JSONResponse

from app.api.compat.evl.envelope import envelope
from app.api.compat.evl.models import Workflow
from app.api.compat.evl.tasks import router
from app.api.deps import PrincipalDep


@router.post(
    "/workflow/create_work_flow",
    summary="Create a work flow",
    description="Not implemented (as in the evl API): the JSON workflow is validated (422 naming a bad field), "
    "then ignored.",
)
async def create_work_flow(
    request: Request, body: Annotated[Workflow, Body(description="The workflow.")], principal: PrincipalDep
) -> JSONResponse:
    """Validate and ignore."""
    return envelope(request, {"message": "This API is not implemented yet."})
