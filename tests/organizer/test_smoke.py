from tests.conftest import Api


async def test_owner_creates_event_and_reads_it_back(api: Api) -> None:
    _agency, _email, owner = await api.register_agency()
    assert owner is not None
    event = await api.add_event(owner)
    r = await api.request("GET", f"/agency/events/{event['id']}", owner)
    assert r.status_code == 200
    assert r.json()["name"] == event["name"]
