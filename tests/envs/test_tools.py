"""Every workplace tool against a hand-checked state change (trimmed real WorkBench data), and its error texts."""

import json

from m2rl.envs.workplace.tools import TOOLS


def out(obs):
    text, err = obs
    return json.loads(text)["output"], err


def test_27_tools_and_schemas(env):
    assert len(TOOLS) == 27
    assert sorted(s["function"]["name"] for s in env.tool_schemas()) == sorted(TOOLS)


def test_email_tools(env):
    st = env.state
    assert out(env.call("email_get_email_information_by_id", {"email_id": "00000057", "field": "subject"})) == (
        {"subject": "Task Update on Develop prototype for report generation"}, False)
    got, err = out(env.call("email_get_email_information_by_id", {"email_id": "00000057", "field": "x"}))
    assert err and got.startswith("Field 'x' not found. Available fields: email_id, inbox/outbox")
    assert out(env.call("email_get_email_information_by_id", {"email_id": "1", "field": "body"})) == (
        "Email not found.", True)
    res, err = out(env.call("email_search_emails", {"query": "carlos report generation"}))
    assert not err and [e["email_id"] for e in res["emails"]][0] == "00000057"
    assert res["pagination"]["total_emails"] == len(res["emails"]) or res["pagination"]["total_pages"] > 1
    dates = [e["sent_datetime"] for e in res["emails"]]
    assert dates == sorted(dates, reverse=True)
    assert out(env.call("email_search_emails", {"query": "zzzqqq"})) == ("No emails found.", True)
    # reply: a new outbox email, id = text max + 1 (unpadded, as the real tool writes it)
    assert out(env.call("email_reply_email", {"email_id": "00000057", "body": "Thanks"})) == (
        "Email replied successfully.", False)
    new = st.tables["emails"]["500"]
    assert new == {"email_id": "500", "inbox/outbox": "outbox", "sender/recipient": "carlos.rodriguez@atlas.com",
                   "subject": "RE: Task Update on Develop prototype for report generation",
                   "sent_datetime": "2023-11-30 23:59:00", "body": "Thanks"}
    assert out(env.call("email_forward_email", {"email_id": "00000057", "recipient": "Raj.Patel@atlas.com"})) == (
        "Email forwarded successfully.", False)
    fw = st.tables["emails"]["501"]
    assert fw["sender/recipient"] == "raj.patel@atlas.com" and fw["subject"].startswith("FW: Task Update")
    assert out(env.call("email_send_email", {"recipient": "a@b.co", "subject": "S", "body": "B"})) == (
        "Email sent successfully.", False)
    assert st.tables["emails"]["502"]["subject"] == "S"
    assert out(env.call("email_send_email", {"recipient": "nobody", "subject": "S", "body": "B"})) == (
        "Invalid recipient email address.", True)
    assert out(env.call("email_send_email", {"recipient": "a@b.co"})) == (
        "Recipient, subject, or body not provided.", True)
    assert out(env.call("email_delete_email", {"email_id": "00000057"})) == ("Email deleted successfully.", False)
    assert "00000057" not in st.tables["emails"]
    assert out(env.call("email_delete_email", {"email_id": "00000057"})) == ("Email not found.", True)
    assert out(env.call("email_reply_email", {"email_id": "00000057"})) == ("Email ID or body not provided.", True)
    assert out(env.call("email_forward_email", {"email_id": "12", "recipient": "a@b.co"})) == ("Email not found.", True)
    assert out(env.call("email_search_emails", {"page_size": "2"}))[0] == (
        "Error searching emails: unsupported operand type(s) for +: 'int' and 'str'")


def test_calendar_tools(env):
    st = env.state
    ev = st.tables["calendar"]["00000252"]
    assert out(env.call("calendar_get_event_information_by_id", {"event_id": "00000252", "field": "event_start"})) == (
        {"event_start": ev["event_start"]}, False)
    assert out(env.call("calendar_get_event_information_by_id", {"event_id": "252", "field": "event_name"})) == (
        "Invalid event ID format. Expected 8-digit ID.", True)
    assert out(env.call("calendar_get_event_information_by_id", {"event_id": "00000252", "field": "x"}))[0] == (
        "Invalid field. Available fields are: event_id, event_name, participant_email, event_start, duration")
    res, _ = out(env.call("calendar_search_events", {"time_min": "2023-12-01 00:00:00",
                                                      "time_max": "2023-12-01 23:59:59"}))
    assert res["events"][0]["event_id"] == "00000252"  # the last event on December 1 (the real row's answer)
    assert out(env.call("calendar_search_events", {"time_min": "tomorrow"})) == (
        "Invalid time_min format. Expected YYYY-MM-DD HH:MM:SS.", True)
    assert out(env.call("calendar_update_event", {"event_id": "00000252", "field": "event_name",
                                                   "new_value": "Risk Management Forum"})) == (
        "Event updated successfully.", False)
    assert st.tables["calendar"]["00000252"] == {**ev, "event_name": "Risk Management Forum"}
    assert out(env.call("calendar_update_event", {"event_id": "00000252", "field": "duration", "new_value": "-5"})) == (
        "Duration must be a positive number of minutes.", True)
    assert out(env.call("calendar_create_event", {"event_name": "Sync", "participant_email": "A@B.CO",
                                                   "event_start": "2023-12-05 10:00:00", "duration": "30"})) == (
        "00000300", False)
    assert st.tables["calendar"]["00000300"] == {"event_id": "00000300", "event_name": "Sync",
                                                 "participant_email": "a@b.co", "event_start": "2023-12-05 10:00:00",
                                                 "duration": "30"}
    assert out(env.call("calendar_create_event", {"event_name": "Sync"})) == ("Participant email not provided.", True)
    assert out(env.call("calendar_delete_event", {"event_id": "00000300"})) == ("Event deleted successfully.", False)
    assert "00000300" not in st.tables["calendar"]
    assert out(env.call("calendar_delete_event", {"event_id": "00000300"})) == ("Event not found.", True)


def test_project_management_tools(env):
    st = env.state
    row = st.tables["tasks"]["00000061"]
    assert out(env.call("project_management_get_task_information_by_id", {"task_id": "00000061", "field": "board"})) == (
        {"board": "Back end"}, False)
    found, err = out(env.call("project_management_search_tasks", {"task_name": "Update Flask"}))
    assert not err and [t["task_id"] for t in found] == ["00000061"]
    assert out(env.call("project_management_search_tasks", {})) == ("No search parameters provided.", True)
    assert out(env.call("project_management_search_tasks", {"assigned_to_email": "aisha"})) == (
        "Invalid email format for assigned_to_email.", True)
    assert out(env.call("project_management_update_task", {"task_id": "00000061", "field": "list_name",
                                                            "new_value": "In Review"})) == (
        "Task updated successfully.", False)
    assert st.tables["tasks"]["00000061"] == {**row, "list_name": "In Review"}
    assert out(env.call("project_management_update_task", {"task_id": "00000061", "field": "board",
                                                            "new_value": "back end"}))[0].startswith("Board not valid")
    assert out(env.call("project_management_create_task", {
        "task_name": "New", "assigned_to_email": "AISHA.CHEN@atlas.com", "list_name": "Backlog",
        "due_date": "2023-12-01", "board": "Design"})) == ("00000300", False)
    assert st.tables["tasks"]["00000300"]["assigned_to_email"] == "aisha.chen@atlas.com"
    assert out(env.call("project_management_create_task", {
        "task_name": "New", "assigned_to_email": "x@y.co", "list_name": "Backlog", "due_date": "2023-12-01",
        "board": "Design"}))[0] == "Assignee email not valid. Please choose from the list of team members."
    assert out(env.call("project_management_delete_task", {"task_id": "00000300"})) == ("Task deleted successfully.", False)
    assert out(env.call("project_management_delete_task", {"task_id": "00000300"})) == ("Task not found.", True)


def test_crm_tools(env):
    st = env.state
    found, err = out(env.call("customer_relationship_manager_search_customers", {
        "assigned_to_email": "akira", "product_interest": "software", "status": "Lead", "page_size": 10}))
    assert not err and sorted(c["customer_id"] for c in found["customers"]) == ["00000035", "00000080", "00000095"]
    assert out(env.call("customer_relationship_manager_search_customers", {})) == (
        "No search parameters provided. Please provide at least one parameter.", True)
    row = st.tables["crm"]["00000095"]
    assert out(env.call("customer_relationship_manager_update_customer", {
        "customer_id": "00000095", "field": "assigned_to_email", "new_value": "Raj.Patel@atlas.com"})) == (
        "Customer updated successfully.", False)
    assert st.tables["crm"]["00000095"] == {**row, "assigned_to_email": "raj.patel@atlas.com"}
    assert out(env.call("customer_relationship_manager_update_customer", {
        "customer_id": "00000095", "field": "status", "new_value": "won"}))[0].startswith("Status not valid")
    assert out(env.call("customer_relationship_manager_add_customer", {"customer_name": "Zed"})) == (
        "Please provide all required fields: customer_name, assigned_to_email, status.", True)
    assert out(env.call("customer_relationship_manager_add_customer", {
        "customer_name": "Zed", "assigned_to_email": "RAJ.patel@atlas.com", "status": "Lead"})) == ("00000200", False)
    assert st.tables["crm"]["00000200"]["assigned_to_email"] == "raj.patel@atlas.com"
    assert st.tables["crm"]["00000200"]["notes"] == ""
    assert out(env.call("customer_relationship_manager_delete_customer", {"customer_id": "00000200"})) == (
        "Customer deleted successfully.", False)
    assert out(env.call("customer_relationship_manager_delete_customer", {"customer_id": "00000200"})) == (
        "Customer not found.", True)


def test_analytics_and_directory(env):
    assert out(env.call("company_directory_find_email_address", {"name": "Carlos"})) == (
        ["carlos.rodriguez@atlas.com"], False)
    assert out(env.call("company_directory_find_email_address", {})) == ("Name not provided.", True)
    visits = env.sandbox.analytics
    day = visits[0]["date_of_visit"]
    on_day = [v for v in visits if v["date_of_visit"] == day]
    assert out(env.call("analytics_total_visits_count", {"time_min": day, "time_max": day})) == (
        {day: len(on_day)}, False)
    assert out(env.call("analytics_engaged_users_count", {"time_min": day, "time_max": day}))[0] == {
        day: sum(v["user_engaged"] for v in on_day)}
    assert out(env.call("analytics_traffic_source_count", {"time_min": day, "time_max": day,
                                                           "traffic_source": "referral"}))[0] == {
        day: sum(v["traffic_source"] == "referral" for v in on_day)}
    assert out(env.call("analytics_get_average_session_duration", {"time_min": day, "time_max": day}))[0] == {
        day: sum(float(v["session_duration_seconds"]) for v in on_day) / len(on_day)}
    vid = visits[0]["visitor_id"]
    got, err = out(env.call("analytics_get_visitor_information_by_id", {"visitor_id": vid}))
    assert not err and got[0]["visitor_id"] == vid and isinstance(got[0]["user_engaged"], bool)
    assert out(env.call("analytics_create_plot", {"time_min": "2023-11-01", "time_max": "2023-11-30",
                                                  "value_to_plot": "total_visits", "plot_type": "bar"})) == (
        "plots/2023-11-01_2023-11-30_total_visits_bar.png", False)
    assert env.state.plots == ["plots/2023-11-01_2023-11-30_total_visits_bar.png"]
    assert out(env.call("analytics_create_plot", {"time_min": "2023-11-01", "time_max": "2023-11-30",
                                                  "value_to_plot": "total_visits", "plot_type": "pie"}))[1] is True


def test_malformed_calls_are_observations(env):
    assert out(env.call("no_such_tool", {})) == ("Error executing tool 'no_such_tool': 'no_such_tool'", True)
    assert out(env.call("email_delete_email", {"email_id": "00000057", "force": True})) == (
        "Error executing tool 'email_delete_email': EmailTool.delete_email() got an unexpected keyword argument "
        "'force'", True)
    text, err = out(env.call("email_delete_email", '{"email_id": '))
    assert err and "arguments are not valid JSON" in text
    assert out(env.call("email_delete_email", "[1]"))[1] is True
    assert out(env.call("email_delete_email", {"email_id": 57})) == ("Email not found.", True)
    assert out(env.call("calendar_search_events", {"query": "(a+)+$"}))[0].endswith("pattern too complex to search with")
    assert env.outcome().tool_errors == 6 and env.outcome().tool_calls == 6
    assert "00000057" in env.state.tables["emails"]  # nothing changed


def test_episode_copies_are_independent(env, params):
    from m2rl.envs import new_environment
    from tests.envs.conftest import env_record, real_rows
    other = new_environment(env_record(real_rows()[0]), params)
    env.call("email_delete_email", {"email_id": "00000057"})
    assert "00000057" not in env.state.tables["emails"]
    assert "00000057" in other.state.tables["emails"] and "00000057" in env.sandbox.tables["emails"]
    assert other.sandbox is env.sandbox  # the base data is loaded once and shared


def test_email_search_after_writes_orders_as_pandas(env):
    """After sends and a deletion the inbox search lists most recent first, new emails (equal times) newest first."""
    env.call("email_send_email", {"recipient": "a@b.co", "subject": "first new", "body": "x"})
    env.call("email_send_email", {"recipient": "a@b.co", "subject": "second new", "body": "x"})
    env.call("email_delete_email", {"email_id": "00000057"})
    res, err = out(env.call("email_search_emails", {"page_size": 1000}))
    ids = [e["email_id"] for e in res["emails"]]
    assert not err and ids[:2] == ["501", "500"] and "00000057" not in ids
    rows = list(env.state.tables["emails"].values())
    want = [r["email_id"] for r in sorted(rows, key=lambda r: r["sent_datetime"])][::-1]  # pandas' descending sort
    assert ids == want
    res, _ = out(env.call("email_search_emails", {"query": "second new"}))
    assert [e["email_id"] for e in res["emails"]] == ["501"]
