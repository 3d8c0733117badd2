"""Tasks on the generated sandbox, their ground-truth calls computed from the sandbox (never typed in).

Three levels: `guided` (a direct task whose request also names the tool and its arguments), `direct` (one
call whose id or every argument is in the request: "Delete the email with ID 00000012") and `lookup` (find the row first, then act on it: "Reply to Hugo's last email about 'X' with
'Y'", "Move the task 'X' to In Review", "Change the name of the last event on 2023-12-05 to Z"). Every task
changes the sandbox (a ground truth that would leave it as it is is never drawn), and every lookup has
exactly one answer in the sandbox (ties are skipped).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from m2rl.envs.workplace import generated
from m2rl.envs.workplace.state import Row, Sandbox, State, cached
from m2rl.envs.workplace.tools import LISTS, STATUSES, Toolbox

SYSTEM = ("Today's date is Thursday, 2023-11-30 and the current time is 23:59:00. Remember the current date and "
          "time when answering queries. Meetings must not start before 9am or end after 6pm.")
INSTRUCTION = ("Use the tools to do what the user asks: call one tool at a time and read its result; when the task is "
               "done, answer briefly without a tool call.")
TOOLKIT_TOOLS = {
    "email": ["email_search_emails", "email_get_email_information_by_id", "email_send_email", "email_reply_email",
              "email_forward_email", "email_delete_email", "company_directory_find_email_address"],
    "calendar": ["calendar_search_events", "calendar_get_event_information_by_id", "calendar_update_event",
                 "calendar_delete_event", "calendar_create_event"],
    "project_management": ["project_management_search_tasks", "project_management_get_task_information_by_id",
                           "project_management_update_task", "project_management_delete_task"],
    "customer_relationship_manager": ["customer_relationship_manager_search_customers",
                                      "customer_relationship_manager_update_customer",
                                      "customer_relationship_manager_delete_customer"],
}
REPLIES = ("Thanks for the update - I will get back to you tomorrow.", "Thanks, noted.", "Sounds good, go ahead.",
           "Let's discuss this at our next sync.", "Great work, thank you!")
EVENT_NAMES = ("Risk Management Forum", "Roadmap Review", "Team Offsite Planning", "Customer Workshop")


@dataclass(frozen=True)
class Task:
    """One task: the request, the toolkit it uses, its level, and the calls that solve it."""

    user: str
    toolkit: str
    level: str  # direct | lookup
    calls: tuple[dict[str, Any], ...]

    def ground_truth(self) -> list[dict[str, Any]]:
        """The calls as workbench rows write them: {name, arguments as JSON text}."""
        return [{"name": c["name"], "arguments": json.dumps(c["arguments"])} for c in self.calls]


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def _first(addr: str) -> str:
    return addr.split("@")[0].split(".")[0].capitalize()


class Skip(Exception):
    """The drawn rows do not make an unambiguous, state-changing task: draw again."""


def _latest(rows: list[Row], key: str) -> Row:
    rows = sorted(rows, key=lambda r: r[key], reverse=True)
    if len(rows) > 1 and rows[0][key] == rows[1][key]:
        raise Skip
    return rows[0]


# ---- direct: the id (or every argument) is in the request ----

def delete_email_by_id(rng: random.Random, box: Sandbox) -> Task:
    eid = rng.choice(sorted(box.tables["emails"]))
    return Task(f"Delete the email with ID {eid}.", "email", "direct", (_call("email_delete_email", email_id=eid),))


def reply_by_id(rng: random.Random, box: Sandbox) -> Task:
    eid, body = rng.choice(sorted(box.tables["emails"])), rng.choice(REPLIES)
    return Task(f"Reply to the email with ID {eid} with '{body}'", "email", "direct",
                (_call("email_reply_email", email_id=eid, body=body),))


def send_email(rng: random.Random, box: Sandbox) -> Task:
    to = rng.choice(box.directory)
    subject, body = rng.choice(("Quick question", "Meeting notes", "Status update")), rng.choice(REPLIES)
    return Task(f"Send an email to {to} with the subject '{subject}' and the body '{body}'", "email", "direct",
                (_call("email_send_email", recipient=to, subject=subject, body=body),))


def _move_task(rng: random.Random, box: Sandbox, level: str) -> Task:
    row = rng.choice(list(box.tables["tasks"].values()))
    target = rng.choice([x for x in LISTS if x != row["list_name"]])
    user = (f"Move task {row['task_id']} to the '{target}' list." if level == "direct"
            else f"Move the task '{row['task_name']}' to {target}.")
    return Task(user, "project_management", level, (_call("project_management_update_task", task_id=row["task_id"],
                                                          field="list_name", new_value=target),))


def _customer_status(rng: random.Random, box: Sandbox, level: str) -> Task:
    row = rng.choice(list(box.tables["crm"].values()))
    target = rng.choice([x for x in STATUSES if x != row["status"]])
    user = (f"Set the status of customer {row['customer_id']} to {target}." if level == "direct"
            else f"Change {row['customer_name']}'s status to {target} in the crm.")
    return Task(user, "customer_relationship_manager", level,
                (_call("customer_relationship_manager_update_customer", customer_id=row["customer_id"],
                       field="status", new_value=target),))


def task_list_by_id(rng: random.Random, box: Sandbox) -> Task:
    return _move_task(rng, box, "direct")


def customer_status_by_id(rng: random.Random, box: Sandbox) -> Task:
    return _customer_status(rng, box, "direct")


# ---- lookup: find the row, then act on it ----

def _about(box: Sandbox, who: str, subject: str) -> list[Row]:
    """The emails with `who` that a search for the subject's words finds (the answer is the latest of them)."""
    words = subject.lower().split()
    return [r for eid, r in box.tables["emails"].items()
            if r["sender/recipient"] == who and all(w in box.search_text[eid] for w in words)]


def reply_last_about(rng: random.Random, box: Sandbox) -> Task:
    row = rng.choice(list(box.tables["emails"].values()))
    who, subject = row["sender/recipient"], row["subject"]
    last = _latest(_about(box, who, subject), "sent_datetime")
    body = rng.choice(REPLIES)
    return Task(f"Reply to {_first(who).lower()}'s last email about '{subject}' with '{body}'", "email", "lookup",
                (_call("email_reply_email", email_id=last["email_id"], body=body),))


def forward_last_about(rng: random.Random, box: Sandbox) -> Task:
    row = rng.choice(list(box.tables["emails"].values()))
    who, subject = row["sender/recipient"], row["subject"]
    last = _latest(_about(box, who, subject), "sent_datetime")
    to = rng.choice([a for a in box.directory if a != who])
    return Task(f"Forward {_first(who)}'s last email about '{subject}' to {to}", "email", "lookup",
                (_call("email_forward_email", email_id=last["email_id"], recipient=to),))


def delete_last_from(rng: random.Random, box: Sandbox) -> Task:
    who = rng.choice(box.directory)
    inbox = [r for r in box.tables["emails"].values() if r["sender/recipient"] == who and r["inbox/outbox"] == "inbox"]
    if not inbox:
        raise Skip
    last = _latest(inbox, "sent_datetime")
    return Task(f"Delete the last email I received from {_first(who)}.", "email", "lookup",
                (_call("email_delete_email", email_id=last["email_id"]),))


def rename_last_event_on(rng: random.Random, box: Sandbox) -> Task:
    day = rng.choice(sorted({r["event_start"][:10] for r in box.tables["calendar"].values()}))
    events = [r for r in box.tables["calendar"].values() if r["event_start"].startswith(day)]
    last = _latest(events, "event_start")
    name = rng.choice(EVENT_NAMES)
    return Task(f"Can you change the name of the last event on {day} to {name}", "calendar", "lookup",
                (_call("calendar_update_event", event_id=last["event_id"], field="event_name", new_value=name),))


def move_task_named(rng: random.Random, box: Sandbox) -> Task:
    return _move_task(rng, box, "lookup")


def customer_status_named(rng: random.Random, box: Sandbox) -> Task:
    return _customer_status(rng, box, "lookup")


DIRECT: tuple[Callable[[random.Random, Sandbox], Task], ...] = (
    delete_email_by_id, reply_by_id, send_email, task_list_by_id, customer_status_by_id)
LOOKUP: tuple[Callable[[random.Random, Sandbox], Task], ...] = (
    reply_last_about, forward_last_about, delete_last_from, rename_last_event_on, move_task_named,
    customer_status_named)


def changes_state(box: Sandbox, task: Task) -> bool:
    """Whether the task's ground truth runs without an error and changes the sandbox."""
    state = State(box)
    tools = Toolbox(state)
    for c in task.calls:
        _, err = tools.run(c["name"], dict(c["arguments"]))
        if err:
            return False
    return bool(state.changed())


def guided(task: Task) -> Task:
    """A direct task whose request also names the call to make, tool and arguments (the `guided` level: what a
    small model can do zero-shot, so that its GRPO sees reward from the first step)."""
    (call,) = task.calls
    block = json.dumps({"name": call["name"], "arguments": call["arguments"]})
    hint = f" To do it, reply with this tool call: <tool_call>{block}</tool_call>"
    return Task(task.user.rstrip() + hint, task.toolkit, "guided", task.calls)


def draw(rng: random.Random, box: Sandbox | None = None, direct_share: float = 0.3, tries: int = 50,
         guided_share: float = 0.3) -> Task:
    """One task on `box` (the generated sandbox of seed 0 by default): `guided_share` of them guided, `direct_share`
    direct, the rest look-ups."""
    box = box if box is not None else cached("generated:0", lambda: generated.generate(0))
    roll = rng.random()
    kinds = DIRECT if roll < guided_share + direct_share else LOOKUP
    for _ in range(tries):
        try:
            task = rng.choice(kinds)(rng, box)
        except Skip:
            continue
        if changes_state(box, task):
            return guided(task) if roll < guided_share and len(task.calls) == 1 else task
    raise RuntimeError("workplace tasks: no valid task drawn (the generated sandbox is too small)")
