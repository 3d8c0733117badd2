"""The 27 workplace tools over a `State`: WorkBench's semantics, messages and id formats, in plain Python.

Each toolkit is a class named as WorkBench's (`EmailTool`, `CalendarTool`, `AnalyticsTool`,
`ProjectManagementTool`, `CustomerRelationshipManagerTool`, `CompanyDirectoryTool`) with the same methods,
keyword names and defaults, so a call behaves as the real server's `function(**args)`: a missing argument
gets the tool's own "... not provided." text, an unknown one Python's `got an unexpected keyword argument`
error, and an exception is reported as NeMo Gym's server reports it (`Error executing tool '<name>': ...`),
or as the tool's own `Error searching emails: ...` where the real tool catches it. A tool's answer is a
`Result`: the returned value and whether it is an error (one of the tool's error texts, or an exception).

Cost is bounded: searches are linear in the table (the email search text is precomputed per base row), a
regular expression from the model is refused when it could backtrack without bound, and nothing touches
the network or a file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

from m2rl.envs.workplace.state import Row, State, email_text

CURRENT_TIME = "2023-11-30 23:59:00"  # WorkBench's HARDCODED_CURRENT_TIME, as str(pd.Timestamp)
EMAIL_RE = re.compile(r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$")
STATUSES = ["Qualified", "Won", "Lost", "Lead", "Proposal"]
PRODUCTS = ["Software", "Hardware", "Services", "Consulting", "Training"]
LISTS = ["Backlog", "In Progress", "In Review", "Completed"]
BOARDS = ["Back end", "Front end", "Design"]
PLOT_VALUES = ["total_visits", "session_duration_seconds", "user_engaged", "visits_direct", "visits_referral",
               "visits_search_engine", "visits_social_media"]
PLOT_TYPES = ["bar", "line", "scatter", "histogram"]
MAX_PATTERN = 200
# a quantified group that itself holds a quantifier, or a back-reference: unbounded backtracking
_RISKY_RE = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]|\\[1-9]")
_META = set(".^$*+?{}[]\\|()")


class Err(str):
    """A tool answer that is one of its error texts."""


def _ts(value: Any) -> datetime:
    """`pd.Timestamp(value)` for the forms a model writes (ISO dates and date-times); ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"could not convert {type(value).__name__} to Timestamp")
    return _parse(value)


@lru_cache(maxsize=1 << 16)
def _parse(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"Unknown datetime string format, unable to parse: {value}") from None


def _matcher(pattern: Any) -> Callable[[Any], bool]:
    """pandas' `str.contains(pattern, case=False)` (a regular expression) as a predicate on one value."""
    if not isinstance(pattern, str):
        raise TypeError("first argument must be string or compiled pattern")
    if not any(c in _META for c in pattern):
        low = pattern.lower()
        return lambda v: isinstance(v, str) and low in v.lower()
    if len(pattern) > MAX_PATTERN or _RISKY_RE.search(pattern):
        raise ValueError("pattern too complex to search with")
    rx = re.compile(pattern, re.IGNORECASE)
    return lambda v: isinstance(v, str) and rx.search(v) is not None


def _mask(rows: list[Row], col: str, pattern: Any) -> list[Row]:
    """Rows whose `col` contains `pattern`; a blank cell fails as pandas' boolean mask with NaN does."""
    match = _matcher(pattern)
    values = [r.get(col) for r in rows]
    if None in values:
        raise ValueError("Cannot mask with non-boolean array containing NA / NaN values")
    return [r for r, v in zip(rows, values, strict=True) if match(v)]


def _next_id(table: dict[str, Row], width: int | None = 8) -> str:
    """`str(int(column.max()) + 1)` (zero-padded to `width`): the max is the text max, as in pandas."""
    top = max(table) if table else "0"
    new = str(int(top) + 1)
    return new.zfill(width) if width else new


def _page(items: list[Row], key: str, page: Any, page_size: Any) -> dict[str, Any]:
    total = len(items)
    total_pages = (total + page_size - 1) // page_size
    page = max(1, min(page, total_pages)) if total_pages > 0 else 1
    start = (page - 1) * page_size
    end = min(start + page_size, total)
    return {key: items[start:end], "pagination": {f"total_{key}": total, "page": page, "page_size": page_size,
                                                  "total_pages": total_pages}}


class _Tool:
    __slots__ = ("state",)

    def __init__(self, state: State):
        self.state = state


class CompanyDirectoryTool(_Tool):
    def find_email_address(self, name=""):
        if name == "":
            return Err("Name not provided.")
        name = name.lower()
        match = _matcher(name)
        return [a for a in self.state.sandbox.directory if match(a)]


class EmailTool(_Tool):
    def get_email_information_by_id(self, email_id=None, field=None):
        if not email_id:
            return Err("Email ID not provided.")
        if not field:
            return Err("Field not provided.")
        try:
            email = self.state.tables["emails"].get(email_id) if isinstance(email_id, str) else None
            if email:
                if field in email:
                    return {field: email[field]}
                return Err(f"Field '{field}' not found. Available fields: {', '.join(email.keys())}")
            return Err("Email not found.")
        except Exception as e:
            return Err(f"Error retrieving email information: {e}")

    def search_emails(self, query="", date_min=None, date_max=None, page=1, page_size=5):
        try:
            words = query.lower().split()
            hits = self.state.index("emails", _email_index)  # (text, sent date, row, time), most recent first
            if words and "emails" not in self.state.touched:  # the base inbox: per-word hits are cached
                keep = set.intersection(*(_word_hits(self.state.sandbox, hits, w) for w in dict.fromkeys(words)))
                hits = [h for i, h in enumerate(hits) if i in keep] if len(keep) < len(hits) else hits
            else:
                for w in words:
                    hits = [h for h in hits if w in h[0]]
            if date_min:
                lo = _ts(date_min).date()
                hits = [h for h in hits if h[1] >= lo]
            if date_max:
                hi = _ts(date_max).date()
                hits = [h for h in hits if h[1] <= hi]
            found = [h[2] for h in hits]
            out = _page(found, "emails", page, page_size)
            if found:
                out["emails"] = [dict(r) for r in out["emails"]]
                return out
            return Err("No emails found.")
        except Exception as e:
            return Err(f"Error searching emails: {e}")

    def send_email(self, recipient=None, subject=None, body=None):
        if not recipient or not subject or not body:
            return Err("Recipient, subject, or body not provided.")
        if "@" not in recipient or "." not in recipient:
            return Err("Invalid recipient email address.")
        try:
            recipient = recipient.lower()
            table = self.state.tables["emails"]
            email_id = _next_id(table, None) if table else "1"
            self.state.put("emails", email_id, {
                "email_id": email_id, "inbox/outbox": "outbox", "sender/recipient": recipient,
                "subject": subject, "sent_datetime": CURRENT_TIME, "body": body})
            return "Email sent successfully."
        except Exception as e:
            return Err(f"Error sending email: {e}")

    def delete_email(self, email_id=None):
        if not email_id:
            return Err("Email ID not provided.")
        try:
            if isinstance(email_id, str) and email_id in self.state.tables["emails"]:
                self.state.delete("emails", email_id)
                return "Email deleted successfully."
            return Err("Email not found.")
        except Exception as e:
            return Err(f"Error deleting email: {e}")

    def forward_email(self, email_id=None, recipient=None):
        if not email_id or not recipient:
            return Err("Email ID or recipient not provided.")
        if "@" not in recipient or "." not in recipient:
            return Err("Invalid recipient email address.")
        try:
            email = self.state.tables["emails"].get(email_id) if isinstance(email_id, str) else None
            if email is None:
                return Err("Email not found.")
            result = self.send_email(recipient.lower(), f"FW: {email['subject']}", email["body"])
            if "Error" in result or "Invalid" in result:
                return Err(result)
            return "Email forwarded successfully."
        except Exception as e:
            return Err(f"Error forwarding email: {e}")

    def reply_email(self, email_id=None, body=None):
        if not email_id or not body:
            return Err("Email ID or body not provided.")
        try:
            email = self.state.tables["emails"].get(email_id) if isinstance(email_id, str) else None
            if email is None:
                return Err("Email not found.")
            result = self.send_email(email["sender/recipient"], f"RE: {email['subject']}", body)
            if "Error" in result or "Invalid" in result:
                return Err(result)
            return "Email replied successfully."
        except Exception as e:
            return Err(f"Error replying to email: {e}")


def _email_index(state: State, rows: dict[str, Row]) -> list[tuple[str, Any, Row, datetime]]:
    """(search text, sent date, row, sent time) of every email, most recent first; equal times in reverse table
    order, as pandas' descending `sort_values` orders them (an ascending sort, reversed).

    An episode's inbox is the base inbox less deletions plus new emails at its end (emails are never changed in
    place), so it is derived from the base index: kept entries in their order, each new email inserted before
    the first entry that is not later than it (new emails come later in table order, so they lead their ties).
    """
    base = state.sandbox.tables["emails"]
    touched = state.touched.get("emails")
    if touched:
        kept = [h for h in state.sandbox.index("emails", _email_index) if rows.get(h[2]["email_id"]) is h[2]]
        for eid, row in rows.items():
            if eid in touched and base.get(eid) is not row:
                when = _ts(row["sent_datetime"])
                at = next((i for i, h in enumerate(kept) if h[3] <= when), len(kept))
                kept.insert(at, (email_text(row), when.date(), row, when))
        return kept
    texts = state.sandbox.search_text
    items = [(texts[eid] if base.get(eid) is row else email_text(row), _ts(row["sent_datetime"]), row)
             for eid, row in rows.items()]
    items.sort(key=lambda h: h[1])
    items.reverse()
    return [(t, dt.date(), row, dt) for t, dt, row in items]


WORD_CACHE = 1 << 14  # per sandbox: query words whose hits in the base inbox are kept


def _word_hits(sandbox: Any, index: list[tuple[str, Any, Row, datetime]], word: str) -> set[int]:
    """Positions in the base inbox index of the emails whose search text contains `word` (cached)."""
    cache: dict[str, set[int]] = sandbox.word_hits
    got = cache.get(word)
    if got is None:
        got = {i for i, h in enumerate(index) if word in h[0]}
        if len(cache) >= WORD_CACHE:
            cache.clear()
        cache[word] = got
    return got


def _event_index(state: State, rows: dict[str, Row]) -> list[tuple[Any, Row]]:
    """(start, row) of every event, latest first."""
    items = [(_ts(row["event_start"]), row) for row in rows.values()]
    items.sort(key=lambda h: h[0], reverse=True)
    return items


def _event_id_ok(event_id: Any) -> bool:
    return isinstance(event_id, str) and len(event_id) == 8 and event_id.isdigit()


class CalendarTool(_Tool):
    FIELDS = ["event_id", "event_name", "participant_email", "event_start", "duration"]

    def get_event_information_by_id(self, event_id=None, field=None):
        if not event_id:
            return Err("Event ID not provided.")
        if not field:
            return Err("Field not provided.")
        if not _event_id_ok(event_id):
            return Err("Invalid event ID format. Expected 8-digit ID.")
        if field not in self.FIELDS:
            return Err(f"Invalid field. Available fields are: {', '.join(self.FIELDS)}")
        event = self.state.tables["calendar"].get(event_id)
        if event:
            return {field: event[field]} if field in event else Err("Field not found.")
        return Err("Event not found.")

    def search_events(self, query="", time_min=None, time_max=None, page=1, page_size=5):
        if time_min:
            try:
                time_min = _ts(time_min)
            except ValueError:
                return Err("Invalid time_min format. Expected YYYY-MM-DD HH:MM:SS.")
        if time_max:
            try:
                time_max = _ts(time_max)
            except ValueError:
                return Err("Invalid time_max format. Expected YYYY-MM-DD HH:MM:SS.")
        match = _matcher(query)
        hits = self.state.index("calendar", _event_index)  # (start, row), latest first
        if time_min:  # the filters commute: the cheap ones first
            hits = [h for h in hits if h[0] >= time_min]
        if time_max:
            hits = [h for h in hits if h[0] <= time_max]
        if query == "":  # pandas: "" is in every text, and a blank cell (NaN) is no match
            events = [h[1] for h in hits if isinstance(h[1]["event_name"], str)
                      or isinstance(h[1]["participant_email"], str)]
        else:
            events = [h[1] for h in hits if match(h[1]["event_name"]) or match(h[1]["participant_email"])]
        if events:
            out = _page(events, "events", page, page_size)
            out["events"] = [dict(r) for r in out["events"]]
            return out
        return Err("No events found.")

    def create_event(self, event_name=None, participant_email=None, event_start=None, duration=None):
        if not event_name:
            return Err("Event name not provided.")
        if not participant_email:
            return Err("Participant email not provided.")
        if not event_start:
            return Err("Event start not provided.")
        if not duration:
            return Err("Event duration not provided.")
        try:
            _ts(event_start)
        except ValueError:
            return Err("Invalid event_start format. Expected YYYY-MM-DD HH:MM:SS.")
        try:
            if int(duration) <= 0:
                return Err("Duration must be a positive number of minutes.")
        except ValueError:
            return Err("Invalid duration format. Expected a number of minutes.")
        participant_email = participant_email.lower()
        event_id = _next_id(self.state.tables["calendar"])
        self.state.put("calendar", event_id, {
            "event_id": event_id, "event_name": event_name, "participant_email": participant_email,
            "event_start": event_start, "duration": duration})
        return event_id

    def delete_event(self, event_id=None):
        if not event_id:
            return Err("Event ID not provided.")
        if not _event_id_ok(event_id):
            return Err("Invalid event ID format. Expected 8-digit ID.")
        if event_id in self.state.tables["calendar"]:
            self.state.delete("calendar", event_id)
            return "Event deleted successfully."
        return Err("Event not found.")

    def update_event(self, event_id=None, field=None, new_value=None):
        if not event_id or not field or not new_value:
            return Err("Event ID, field, or new value not provided.")
        if not _event_id_ok(event_id):
            return Err("Invalid event ID format. Expected 8-digit ID.")
        valid = ["event_name", "participant_email", "event_start", "duration"]
        if field not in valid:
            return Err(f"Invalid field. Available fields are: {', '.join(valid)}")
        if field == "event_start":
            try:
                _ts(new_value)
            except ValueError:
                return Err("Invalid event_start format. Expected YYYY-MM-DD HH:MM:SS.")
        elif field == "duration":
            try:
                if int(new_value) <= 0:
                    return Err("Duration must be a positive number of minutes.")
            except ValueError:
                return Err("Invalid duration format. Expected a number of minutes.")
        row = self.state.tables["calendar"].get(event_id)
        if row is None:
            return Err("Event not found.")
        if field == "participant_email":
            new_value = new_value.lower()
        self.state.put("calendar", event_id, {**row, field: new_value})
        return "Event updated successfully."


class AnalyticsTool(_Tool):
    def _visits(self, time_min, time_max) -> list[Row]:
        data = self.state.sandbox.analytics
        if time_min:
            data = [r for r in data if r["date_of_visit"] >= time_min]
        if time_max:
            data = [r for r in data if r["date_of_visit"] <= time_max]
        return data

    @staticmethod
    def _by_date(rows: list[Row], value: Callable[[Row], Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for r in sorted(rows, key=lambda r: r["date_of_visit"]):
            out.setdefault(r["date_of_visit"], []).append(value(r))
        return out

    def get_visitor_information_by_id(self, visitor_id=None):
        if not visitor_id:
            return Err("Visitor ID not provided.")
        rows = [dict(r) for r in self.state.sandbox.analytics if r["visitor_id"] == visitor_id]
        return rows if rows else Err("Visitor not found.")

    def create_plot(self, time_min=None, time_max=None, value_to_plot=None, plot_type=None):
        if not time_min:
            return Err("Start date not provided.")
        if not time_max:
            return Err("End date not provided.")
        if value_to_plot not in PLOT_VALUES:
            return Err("Value to plot must be one of " + ", ".join(f"'{v}'" for v in PLOT_VALUES))
        if plot_type not in PLOT_TYPES:
            return Err("Plot type must be one of 'bar', 'line', 'scatter', or 'histogram'")
        path = f"plots/{time_min}_{time_max}_{value_to_plot}_{plot_type}.png"
        self.state.add_plot(path)
        return path

    def total_visits_count(self, time_min=None, time_max=None):
        return {d: len(v) for d, v in self._by_date(self._visits(time_min, time_max), lambda r: 1).items()}

    def engaged_users_count(self, time_min=None, time_max=None):
        return {d: sum(v) for d, v in self._by_date(self._visits(time_min, time_max),
                                                      lambda r: int(bool(r["user_engaged"]))).items()}

    def traffic_source_count(self, time_min=None, time_max=None, traffic_source=None):
        rows = self._visits(time_min, time_max)
        if traffic_source:
            return {d: sum(v) for d, v in self._by_date(rows, lambda r: int(r["traffic_source"] == traffic_source)
                                                         ).items()}
        return {d: len(v) for d, v in self._by_date(rows, lambda r: 1).items()}

    def get_average_session_duration(self, time_min=None, time_max=None):
        by = self._by_date(self._visits(time_min, time_max), lambda r: float(r["session_duration_seconds"]))
        return {d: sum(v) / len(v) for d, v in by.items()}


class ProjectManagementTool(_Tool):
    def _assignees(self) -> set[str]:
        return {str(r["assigned_to_email"]).lower() for r in self.state.tables["tasks"].values()
                if r.get("assigned_to_email") is not None}

    def get_task_information_by_id(self, task_id=None, field=None):
        if not task_id:
            return Err("Task ID not provided.")
        if not field:
            return Err("Field not provided.")
        task = self.state.tables["tasks"].get(task_id) if isinstance(task_id, str) else None
        if task:
            return {field: task[field]} if field in task else Err("Field not found.")
        return Err("Task not found.")

    def search_tasks(self, task_name=None, assigned_to_email=None, list_name=None, due_date=None, board=None):
        if not any([task_name, assigned_to_email, list_name, due_date, board]):
            return Err("No search parameters provided.")
        if assigned_to_email and not EMAIL_RE.match(assigned_to_email):
            return Err("Invalid email format for assigned_to_email.")
        tasks = list(self.state.tables["tasks"].values())
        if task_name:
            tasks = _mask(tasks, "task_name", task_name)
        if assigned_to_email:
            want = assigned_to_email.lower()
            tasks = [r for r in tasks if isinstance(r.get("assigned_to_email"), str)
                     and r["assigned_to_email"].lower() == want]
        if list_name:
            tasks = _mask(tasks, "list_name", list_name)
        if due_date:
            tasks = _mask(tasks, "due_date", due_date)
        if board:
            tasks = _mask(tasks, "board", board)
        return [dict(r) for r in tasks]

    def create_task(self, task_name=None, assigned_to_email=None, list_name=None, due_date=None, board=None):
        if not all([task_name, assigned_to_email, list_name, due_date, board]):
            return Err("Missing task details.")
        assigned_to_email = assigned_to_email.lower()
        if assigned_to_email not in self._assignees():
            return Err("Assignee email not valid. Please choose from the list of team members.")
        if list_name not in LISTS:
            return Err("List not valid. Please choose from: 'Backlog', 'In Progress', 'In Review', 'Completed'.")
        if board not in BOARDS:
            return Err("Board not valid. Please choose from: 'Back end', 'Front end', 'Design'.")
        task_id = _next_id(self.state.tables["tasks"])
        self.state.put("tasks", task_id, {
            "task_id": task_id, "task_name": task_name, "assigned_to_email": assigned_to_email,
            "list_name": list_name, "due_date": due_date, "board": board})
        return task_id

    def delete_task(self, task_id=None):
        if not task_id:
            return Err("Task ID not provided.")
        if isinstance(task_id, str) and task_id in self.state.tables["tasks"]:
            self.state.delete("tasks", task_id)
            return "Task deleted successfully."
        return Err("Task not found.")

    def update_task(self, task_id=None, field=None, new_value=None):
        if not task_id or not field or not new_value:
            return Err("Task ID, field, or new value not provided.")
        if field == "assigned_to_email":
            new_value = new_value.lower()
        if field == "board" and new_value not in BOARDS:
            return Err("Board not valid. Please choose from: 'Back end', 'Front end', 'Design'.")
        if field == "list_name" and new_value not in LISTS:
            return Err("List not valid. Please choose from: 'Backlog', 'In Progress', 'In Review', 'Completed'.")
        if field == "assigned_to_email" and new_value not in self._assignees():
            return Err("Assignee email not valid. Please choose from the list of team members.")
        row = self.state.tables["tasks"].get(task_id) if isinstance(task_id, str) else None
        if row is None:
            return Err("Task not found.")
        if field not in row:
            return Err("Field not valid.")
        self.state.put("tasks", task_id, {**row, field: new_value})
        return "Task updated successfully."


class CustomerRelationshipManagerTool(_Tool):
    def search_customers(self, customer_name=None, customer_email=None, product_interest=None, status=None,
                         assigned_to_email=None, last_contact_date_min=None, last_contact_date_max=None,
                         follow_up_by_min=None, follow_up_by_max=None, page=1, page_size=5):
        if not any([customer_name, customer_email, product_interest, status, assigned_to_email,
                    last_contact_date_min, last_contact_date_max, follow_up_by_min, follow_up_by_max]):
            return Err("No search parameters provided. Please provide at least one parameter.")
        rows = list(self.state.tables["crm"].values())
        for col, pattern in (("customer_name", customer_name), ("customer_email", customer_email),
                             ("product_interest", product_interest), ("status", status),
                             ("assigned_to_email", assigned_to_email)):
            if pattern:
                rows = _mask(rows, col, pattern)
        for col, bound, lower in (("last_contact_date", last_contact_date_min, True),
                                  ("last_contact_date", last_contact_date_max, False),
                                  ("follow_up_by", follow_up_by_min, True),
                                  ("follow_up_by", follow_up_by_max, False)):
            if bound:
                rows = [r for r in rows if r.get(col) is not None
                        and (r[col] >= bound if lower else r[col] <= bound)]
        out = _page(rows, "customers", page, page_size)
        if rows:
            out["customers"] = [dict(r) for r in out["customers"]]
            return out
        return Err("No customers found.")

    def update_customer(self, customer_id=None, field=None, new_value=None):
        if not customer_id or not field or not new_value:
            return Err("Customer ID, field, or new value not provided.")
        if field == "status" and new_value not in STATUSES:
            return Err("Status not valid. Please choose from: 'Qualified', 'Won', 'Lost', 'Lead', 'Proposal'")
        if field == "product_interest" and new_value not in PRODUCTS:
            return Err("Product interest not valid. Please choose from: 'Software', 'Hardware', 'Services', "
                       "'Consulting', 'Training'")
        if field in ["customer_email", "assigned_to_email"]:
            new_value = new_value.lower()
        row = self.state.tables["crm"].get(customer_id) if isinstance(customer_id, str) else None
        if row is not None:
            if field in row:
                self.state.put("crm", customer_id, {**row, field: new_value})
                return "Customer updated successfully."
            return Err("Field not valid. Please choose from: 'customer_name', 'assigned_to_email', "
                       "'customer_email', 'customer_phone', 'last_contact_date', 'product_interest', 'status', "
                       "'notes', 'follow_up_by'")
        return Err("Customer not found.")

    def add_customer(self, customer_name=None, assigned_to_email=None, status=None, customer_email=None,
                     customer_phone=None, last_contact_date=None, product_interest=None, notes="",
                     follow_up_by=None):
        if not all([customer_name, assigned_to_email, status]):
            return Err("Please provide all required fields: customer_name, assigned_to_email, status.")
        assigned_to_email = assigned_to_email.lower()
        if customer_email:
            customer_email = customer_email.lower()
        new_id = _next_id(self.state.tables["crm"])
        self.state.put("crm", new_id, {
            "customer_id": new_id, "assigned_to_email": assigned_to_email, "customer_name": customer_name,
            "customer_email": customer_email, "customer_phone": customer_phone,
            "last_contact_date": last_contact_date, "product_interest": product_interest, "status": status,
            "follow_up_by": follow_up_by, "notes": notes})
        return new_id

    def delete_customer(self, customer_id=None):
        if not customer_id:
            return Err("Customer ID not provided.")
        if not (isinstance(customer_id, str) and customer_id in self.state.tables["crm"]):
            return Err("Customer not found.")
        self.state.delete("crm", customer_id)
        return "Customer deleted successfully."


# tool name -> (toolkit class, method name); the 27 tools of a workbench row, in its order
TOOLKITS: dict[str, type[_Tool]] = {
    "company_directory": CompanyDirectoryTool, "email": EmailTool, "calendar": CalendarTool,
    "analytics": AnalyticsTool, "project_management": ProjectManagementTool,
    "customer_relationship_manager": CustomerRelationshipManagerTool,
}
TOOLS: dict[str, tuple[str, str]] = {
    "company_directory_find_email_address": ("company_directory", "find_email_address"),
    "email_get_email_information_by_id": ("email", "get_email_information_by_id"),
    "email_search_emails": ("email", "search_emails"),
    "email_send_email": ("email", "send_email"),
    "email_delete_email": ("email", "delete_email"),
    "email_forward_email": ("email", "forward_email"),
    "email_reply_email": ("email", "reply_email"),
    "calendar_get_event_information_by_id": ("calendar", "get_event_information_by_id"),
    "calendar_search_events": ("calendar", "search_events"),
    "calendar_create_event": ("calendar", "create_event"),
    "calendar_delete_event": ("calendar", "delete_event"),
    "calendar_update_event": ("calendar", "update_event"),
    "analytics_engaged_users_count": ("analytics", "engaged_users_count"),
    "analytics_get_visitor_information_by_id": ("analytics", "get_visitor_information_by_id"),
    "analytics_create_plot": ("analytics", "create_plot"),
    "analytics_traffic_source_count": ("analytics", "traffic_source_count"),
    "analytics_total_visits_count": ("analytics", "total_visits_count"),
    "analytics_get_average_session_duration": ("analytics", "get_average_session_duration"),
    "project_management_get_task_information_by_id": ("project_management", "get_task_information_by_id"),
    "project_management_search_tasks": ("project_management", "search_tasks"),
    "project_management_create_task": ("project_management", "create_task"),
    "project_management_delete_task": ("project_management", "delete_task"),
    "project_management_update_task": ("project_management", "update_task"),
    "customer_relationship_manager_search_customers": ("customer_relationship_manager", "search_customers"),
    "customer_relationship_manager_update_customer": ("customer_relationship_manager", "update_customer"),
    "customer_relationship_manager_add_customer": ("customer_relationship_manager", "add_customer"),
    "customer_relationship_manager_delete_customer": ("customer_relationship_manager", "delete_customer"),
}
WRITES = frozenset(n for n in TOOLS if any(w in n for w in ("_send_", "_delete_", "_forward_", "_reply_", "_create_",
                                                            "_update_", "_add_")))


class Toolbox:
    """The 27 tools bound to one state; `run(name, args)` is the real server's route."""

    __slots__ = ("state", "_fns")

    def __init__(self, state: State):
        self.state = state
        kits = {k: cls(state) for k, cls in TOOLKITS.items()}
        self._fns: dict[str, Callable[..., Any]] = {n: getattr(kits[k], m) for n, (k, m) in TOOLS.items()}

    def run(self, name: str, args: dict[str, Any]) -> tuple[Any, bool]:
        """(the tool's answer, is_error); `None` arguments are dropped as the server drops them."""
        fn = self._fns.get(name)
        if fn is None:
            return Err(f"Error executing tool '{name}': '{name}'"), True
        try:
            out = fn(**{k: v for k, v in args.items() if v is not None})
        except RecursionError:
            raise
        except Exception as e:  # the server's catch-all: the model reads the error and may correct itself
            return Err(f"Error executing tool '{name}': {e}"), True
        return out, isinstance(out, Err)
