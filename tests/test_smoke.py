

def test_server_lists_its_actions(session_server):
    with session_server.client() as client:
        names = {a.type for a in client.list_actions()}
    assert {"DELETE", "PUT", "UPDATE", "HEALTH", "STATS"} <= names
