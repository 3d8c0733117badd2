"""The function schemas of the 27 workplace tools (OpenAI chat form), for records M2RL writes itself.

Real workbench rows bring their own schemas (`responses_create_params.tools`); these describe the same
tools, parameter names, types and required parameters, so a generated record offers what a real row offers.
"""

from __future__ import annotations

from typing import Any

from m2rl.envs.workplace.tools import TOOLS


def _fn(name: str, description: str, required: tuple[str, ...] = (), /, **props: Any) -> dict[str, Any]:
    properties = {k: ({"type": "integer", "description": v[1:]} if v.startswith("#") else
                      {"type": "string", "description": v}) for k, v in props.items()}
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": list(required),
                       "additionalProperties": False}}}


_DATE = "Format: YYYY-MM-DD"
_TIME = "Format: YYYY-MM-DD HH:MM:SS"
_PAGE = "#Page number of results to return"

SCHEMAS: list[dict[str, Any]] = [
    _fn("company_directory_find_email_address", "Finds all email addresses containing the given name "
        "(case-insensitive search).", name="Name or partial name to search for in email addresses"),
    _fn("email_get_email_information_by_id", "Retrieves specific details of an email by its ID.",
        ("email_id", "field"), email_id="Unique ID of the email",
        field="Specific field to return. Available fields: 'email_id', 'inbox/outbox', 'sender/recipient', "
              "'subject', 'sent_datetime', 'body'"),
    _fn("email_search_emails", "Searches for emails matching the given query across subject, body, or "
        "sender/recipient fields, most recent first, with pagination.",
        query="Words that must all appear in the subject, body or sender/recipient",
        date_min=f"Lower date limit for the email's sent date (inclusive). {_DATE}",
        date_max=f"Upper date limit for the email's sent date (inclusive). {_DATE}",
        page=_PAGE, page_size="#Number of emails per page"),
    _fn("email_send_email", "Sends an email to the specified recipient.", ("recipient", "subject", "body"),
        recipient="Email address of the recipient", subject="Subject line of the email",
        body="Body content of the email"),
    _fn("email_delete_email", "Deletes an email by its ID.", ("email_id",),
        email_id="Unique ID of the email to be deleted"),
    _fn("email_forward_email", "Forwards an email to the specified recipient.", ("email_id", "recipient"),
        email_id="Unique ID of the email to be forwarded", recipient="Email address of the recipient"),
    _fn("email_reply_email", "Replies to an email by its ID.", ("email_id", "body"),
        email_id="Unique ID of the email to be replied", body="Body content of the email"),
    _fn("calendar_get_event_information_by_id", "Returns the event for a given ID.", ("event_id", "field"),
        event_id="8-digit ID of the event",
        field="Field to return. Available fields are: 'event_id', 'event_name', 'participant_email', "
              "'event_start', 'duration'"),
    _fn("calendar_search_events", "Returns the events for a given query, most recent first, with pagination.",
        query="Query to search for. Terms will be matched in the event_name and participant_email fields",
        time_min=f"Lower bound (inclusive) for an event's start time. {_TIME}",
        time_max=f"Upper bound (inclusive) for an event's start time. {_TIME}",
        page=_PAGE, page_size="#Number of events per page"),
    _fn("calendar_create_event", "Creates a new event.", ("event_name", "participant_email", "event_start",
                                                          "duration"),
        event_name="Name of the event", participant_email="Email of the participant",
        event_start=f"Start time of the event. {_TIME}", duration="Duration of the event in minutes"),
    _fn("calendar_delete_event", "Deletes an event.", ("event_id",), event_id="8-digit ID of the event"),
    _fn("calendar_update_event", "Updates an event.", ("event_id", "field", "new_value"),
        event_id="8-digit ID of the event",
        field="Field to update. Available fields are: 'event_name', 'participant_email', 'event_start', "
              "'duration'", new_value="New value for the field"),
    _fn("analytics_engaged_users_count", "Returns the number of engaged users within a specified time range.",
        time_min=f"Start date of the time range. {_DATE}", time_max=f"End date of the time range. {_DATE}"),
    _fn("analytics_get_visitor_information_by_id", "Returns the analytics data for a given visitor ID.",
        ("visitor_id",), visitor_id="ID of the visitor"),
    _fn("analytics_create_plot", "Plots the analytics data for a given time range and value.",
        ("time_min", "time_max", "value_to_plot", "plot_type"),
        time_min=f"Start date of the time range. {_DATE}", time_max=f"End date of the time range. {_DATE}",
        value_to_plot="Value to plot. Available values are: 'total_visits', 'session_duration_seconds', "
                      "'user_engaged', 'visits_direct', 'visits_referral', 'visits_search_engine', "
                      "'visits_social_media'",
        plot_type="Type of plot. Can be 'bar', 'line', 'scatter' or 'histogram'"),
    _fn("analytics_traffic_source_count", "Returns the number of visits from a specific traffic source within "
        "a specified time range.", time_min=f"Start date of the time range. {_DATE}",
        time_max=f"End date of the time range. {_DATE}",
        traffic_source="Traffic source to filter the visits. Available values are: 'direct', 'referral', "
                       "'search engine', 'social media'"),
    _fn("analytics_total_visits_count", "Returns the total number of visits within a specified time range.",
        time_min=f"Start date of the time range. {_DATE}", time_max=f"End date of the time range. {_DATE}"),
    _fn("analytics_get_average_session_duration", "Returns the average session duration within a specified "
        "time range.", time_min=f"Start date of the time range. {_DATE}",
        time_max=f"End date of the time range. {_DATE}"),
    _fn("project_management_get_task_information_by_id", "Returns the task information for a given ID.",
        ("task_id", "field"), task_id="8-digit ID of the task",
        field="Field to return. Available fields are: 'task_id', 'task_name', 'assigned_to_email', 'list_name', "
              "'due_date', 'board'"),
    _fn("project_management_search_tasks", "Searches for tasks based on the given parameters.",
        task_name="Name of the task", assigned_to_email="Email address of the person assigned to the task",
        list_name="Name of the list the task belongs to", due_date="Due date of the task in YYYY-MM-DD format",
        board="Name of the board the task belongs to"),
    _fn("project_management_create_task", "Creates a new task.",
        ("task_name", "assigned_to_email", "list_name", "due_date", "board"),
        task_name="Name of the task", assigned_to_email="Email address of the person assigned to the task",
        list_name="Name of the list the task belongs to. One of: 'Backlog', 'In Progress', 'In Review', "
                  "'Completed'", due_date="Due date of the task in YYYY-MM-DD format",
        board="Name of the board the task belongs to. One of: 'Back end', 'Front end', 'Design'"),
    _fn("project_management_delete_task", "Deletes a task by ID.", ("task_id",), task_id="8-digit ID of the task"),
    _fn("project_management_update_task", "Updates a task by ID.", ("task_id", "field", "new_value"),
        task_id="8-digit ID of the task",
        field="Field to update. Available fields are: 'task_name', 'assigned_to_email', 'list_name', 'due_date', "
              "'board'", new_value="New value for the field"),
    _fn("customer_relationship_manager_search_customers", "Searches for customers based on the given "
        "parameters with pagination support.", customer_name="Name of the customer",
        customer_email="Email address of the customer", product_interest="Product interest of the customer",
        status="Current status of the customer",
        assigned_to_email="Email address of the person assigned to the customer",
        last_contact_date_min=f"Minimum last contact date. {_DATE}",
        last_contact_date_max=f"Maximum last contact date. {_DATE}",
        follow_up_by_min=f"Minimum follow up date. {_DATE}", follow_up_by_max=f"Maximum follow up date. {_DATE}",
        page=_PAGE, page_size="#Number of customers per page"),
    _fn("customer_relationship_manager_update_customer", "Updates a customer record by ID.",
        ("customer_id", "field", "new_value"), customer_id="ID of the customer",
        field="Field to update. Available fields are: 'customer_name', 'assigned_to_email', 'customer_email', "
              "'customer_phone', 'last_contact_date', 'product_interest', 'status', 'notes', 'follow_up_by'",
        new_value="New value for the field"),
    _fn("customer_relationship_manager_add_customer", "Adds a new customer record.",
        ("customer_name", "assigned_to_email", "status"), customer_name="Name of the customer",
        assigned_to_email="Email address of the person assigned to the customer",
        status="Current status of the customer. One of: 'Qualified', 'Won', 'Lost', 'Lead', 'Proposal'",
        customer_email="Email address of the customer", customer_phone="Phone number of the customer",
        last_contact_date=f"The last date the customer was contacted. {_DATE}",
        product_interest="Product interest of the customer. One of: 'Software', 'Hardware', 'Services', "
                         "'Consulting', 'Training'",
        notes="Notes about the customer", follow_up_by=f"Date for the next follow up. {_DATE}"),
    _fn("customer_relationship_manager_delete_customer", "Deletes a customer record by ID.", ("customer_id",),
        customer_id="ID of the customer"),
]
BY_NAME: dict[str, dict[str, Any]] = {s["function"]["name"]: s for s in SCHEMAS}
if set(BY_NAME) != set(TOOLS):  # a schema per tool, no more
    raise RuntimeError(f"tool schemas and tools differ: {sorted(set(BY_NAME) ^ set(TOOLS))}")


def schemas(names: list[str] | None = None) -> list[dict[str, Any]]:
    """The schemas of `names` (all 27 in the workbench order when None), as fresh dicts."""
    import copy
    picked = SCHEMAS if names is None else [BY_NAME[n] for n in names]
    return copy.deepcopy(picked)
