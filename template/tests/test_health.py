"""An example test of a route: copy it for each router you add."""

from fastapi.testclient import TestClient


def test_health_answers_200(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
