"""Fixtures of the container tests: the Docker engine, the images (built once per run), clean-up."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .support import build_images, docker_client, remove_labelled


@pytest.fixture(scope="session")
def docker_engine() -> Any:
    return docker_client()


@pytest.fixture(scope="session")
def images(docker_engine: Any) -> None:
    build_images()


@pytest.fixture(scope="session")
def session_id(docker_engine: Any) -> Iterator[str]:
    """Label value of everything this session creates; removed at the end, whatever happened."""
    session = uuid.uuid4().hex[:10]
    try:
        yield session
    finally:
        remove_labelled(docker_engine, session)
