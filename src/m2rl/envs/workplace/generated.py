"""A small workplace sandbox generated from a seed: WorkBench's tables, columns and id formats (8-digit
zero-padded ids, `YYYY-MM-DD HH:MM:SS` times, the same lists, boards, statuses and traffic sources), a
company of a dozen people, a few dozen rows per table. No data files: the same seed gives the same sandbox.
"""

from __future__ import annotations

import random

from m2rl.envs.workplace.state import Row, Sandbox
from m2rl.envs.workplace.tools import BOARDS, LISTS, PRODUCTS, STATUSES

COMPANY = "nimbus.co"
USER = "Sam"
FIRST = ("amara", "bruno", "chloe", "dmitri", "elif", "felix", "gita", "hugo", "ines", "jonas", "keiko", "lucas",
         "maya", "nikhil", "olga", "pablo")
LAST = ("okafor", "silva", "martin", "ivanov", "yilmaz", "weber", "rao", "laurent", "costa", "berg", "tanaka",
        "moreau", "cohen", "mehta", "petrova", "ruiz")
EVENTS = ("sync up", "process review", "budget planning", "design critique", "sprint review", "1:1",
          "product demo", "client call", "quarterly planning", "hiring panel")
FEATURES = ("login page", "search bar", "payment gateway", "report generation", "email notification",
            "user dashboard", "data export", "onboarding flow", "settings menu", "chat widget")
VERBS = ("Develop prototype for", "Fix bug in", "Add tests for", "Design mockups for", "Optimize", "Document")
COMPANIES = ("Brightwave", "Corelink", "Datafield", "Evergreen Labs", "Flux Robotics", "Greenleaf", "Helix Bio",
             "Ironclad", "Juniper Systems", "Keystone", "Lumen Works", "Meridian")
CUSTOMER_FIRST = ("Alex", "Blair", "Casey", "Drew", "Emery", "Finley", "Harper", "Jordan", "Kai", "Logan",
                  "Morgan", "Quinn", "Riley", "Sawyer", "Taylor")
CUSTOMER_LAST = ("Adams", "Brooks", "Carter", "Diaz", "Ellis", "Foster", "Garcia", "Hayes", "Jackson", "Kim",
                 "Lopez", "Nguyen", "Parker", "Reed", "Shaw")
SOURCES = ("direct", "referral", "search engine", "social media")
SIZES = {"people": 12, "emails": 40, "events": 30, "tasks": 30, "customers": 24, "visits": 90}


def _ids(rng: random.Random, n: int) -> list[str]:
    ids = [str(i).zfill(8) for i in range(n)]
    rng.shuffle(ids)
    return ids


def people(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """(first name, address) of the company's people."""
    firsts = rng.sample(FIRST, n)
    lasts = rng.sample(LAST, n)
    return [(f.capitalize(), f"{f}.{la}@{COMPANY}") for f, la in zip(firsts, lasts, strict=True)]


def _time(rng: random.Random, month: int, day: int | None = None) -> str:
    day = day or rng.randint(1, 28)
    return f"2023-{month:02d}-{day:02d} {rng.randint(8, 17):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"


def generate(seed: int = 0) -> Sandbox:
    """The generated sandbox of `seed`."""
    rng = random.Random(f"m2rl-workplace-{seed}")
    staff = people(rng, SIZES["people"])
    task_names = [f"{v} {f}" for v in VERBS for f in FEATURES]
    rng.shuffle(task_names)

    tasks: dict[str, Row] = {}
    for tid, name in zip(_ids(rng, SIZES["tasks"]), task_names, strict=False):
        _, who = rng.choice(staff)
        tasks[tid] = {"task_id": tid, "task_name": name, "assigned_to_email": who, "list_name": rng.choice(LISTS),
                      "due_date": f"2023-{rng.choice((11, 12)):02d}-{rng.randint(1, 28):02d}",
                      "board": rng.choice(BOARDS)}

    emails: dict[str, Row] = {}
    used_subjects: set[str] = set()
    task_list = list(tasks.values())
    for eid in _ids(rng, SIZES["emails"]):
        first, who = rng.choice(staff)
        kind = rng.randrange(3)
        if kind == 0:
            task = rng.choice(task_list)["task_name"]
            subject = f"Task Update on {task}"
            body = (f"{USER},\\n\\nCompleted task '{task}' ahead of schedule. Please review and let me know if "
                    f"any tweaks are needed.\\n\\nBest,\\n{first}")
        elif kind == 1:
            event = rng.choice(EVENTS)
            subject = f"Update on {event.title()}"
            body = f"{USER},\\n\\nA few questions came up ahead of the {event}. Could use your advice.\\n\\n{first}"
        else:
            feature = rng.choice(FEATURES)
            subject = f"Request for feedback on the {feature}"
            body = f"Hi {USER},\\n\\nCould you look at the latest {feature} changes this week?\\n\\nThanks,\\n{first}"
        if subject in used_subjects and rng.random() < 0.5:
            subject = f"{subject} (follow-up)"
        used_subjects.add(subject)
        emails[eid] = {"email_id": eid, "inbox/outbox": "inbox" if rng.random() < 0.8 else "outbox",
                       "sender/recipient": who, "subject": subject, "sent_datetime": _time(rng, rng.choice((10, 11))),
                       "body": body}

    calendar: dict[str, Row] = {}
    for evid in _ids(rng, SIZES["events"]):
        _, who = rng.choice(staff)
        start = f"2023-{rng.choice((11, 12)):02d}-{rng.randint(1, 28):02d} {rng.randint(9, 16):02d}:{rng.choice((0, 30)):02d}:00"
        calendar[evid] = {"event_id": evid, "event_name": rng.choice(EVENTS), "participant_email": who,
                          "event_start": start, "duration": str(rng.choice((30, 60, 90)))}

    crm: dict[str, Row] = {}
    names = [f"{f} {la}" for f in CUSTOMER_FIRST for la in CUSTOMER_LAST]
    rng.shuffle(names)
    for cid, name in zip(_ids(rng, SIZES["customers"]), names, strict=False):
        _, who = rng.choice(staff)
        company = rng.choice(COMPANIES).lower().replace(" ", "")
        crm[cid] = {"customer_id": cid, "assigned_to_email": who, "customer_name": name,
                    "customer_email": f"{name.lower().replace(' ', '.')}@{company}.com",
                    "customer_phone": None if rng.random() < 0.5 else f"555-{rng.randint(1000, 9999)}",
                    "last_contact_date": _time(rng, 11), "product_interest": rng.choice(PRODUCTS),
                    "status": rng.choice(STATUSES), "follow_up_by": _time(rng, 12),
                    "notes": f"2023-11-{rng.randint(1, 28):02d}: {rng.choice(('Had a call.', 'Saw the demo.', 'Sent a quote.'))} "}

    analytics: list[Row] = []
    for _ in range(SIZES["visits"]):
        analytics.append({"date_of_visit": f"2023-11-{rng.randint(1, 30):02d}",
                          "visitor_id": str(rng.randint(0, 9999)).zfill(4), "page_views": str(rng.randint(1, 12)),
                          "session_duration_seconds": str(rng.randint(1, 30)), "traffic_source": rng.choice(SOURCES),
                          "user_engaged": rng.random() < 0.5})
    directory = sorted(addr for _, addr in staff)
    return Sandbox(f"generated:{seed}", {"emails": emails, "calendar": calendar, "tasks": tasks, "crm": crm},
                   analytics, directory)
