"""Tool-calling tasks: a system message lists the available tools (JSON schemas) and the Hermes
`<tool_call>` answer format; the user asks for one or two actions whose calls are fully determined by
the request (every argument value is stated in it, every tool parameter is required).

The verifier block carries `ground_truth` (the calls, in the order the user asks for them) and `tools`
(the schemas shown to the model).

Opt-in kind `tool_single` (`options.kinds: [tool_single]`): one request, one call with one or two arguments
stated in it, two tools shown, after a worked example (a user turn and the assistant's call, to the same tool
or the other one): for models too small for the standard mix. Opt-in kind `tool_brief`: the same tasks in a
prompt of about 60% the length (a two-sentence system message, each tool's function object with its parameters'
types and descriptions only).

Opt-in kind `workplace` (`options.kinds: [workplace]`): multi-turn environment records on the generated
workplace sandbox (`m2rl.envs`, `verifier.type: env`): a one-call action on a stated id, or a look-up
(search the inbox, the calendar, the tasks, the CRM) then the action; the ground truth is computed from the
sandbox by `m2rl.envs.workplace.tasks`, the reward is the sandbox's end state. The offered tools (the task's
toolkit) are named in `verifier.tools`; the episode gives their schemas to the chat template's `tools=`
(`Environment.tool_schemas`), the system message only states the date and how to answer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from m2rl.data.builtin import chat, draw_unique


def _tool(name: str, description: str, **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": props, "required": list(props),
                       "additionalProperties": False}}}


def _s(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


TOOLS: dict[str, dict[str, Any]] = {t["function"]["name"]: t for t in (
    _tool("get_weather", "Get the current weather in a city.",
          city=_s("City name, e.g. Paris."), unit=_s("Temperature unit.", enum=["celsius", "fahrenheit"])),
    _tool("get_forecast", "Get the daily weather forecast for the next days in a city.",
          city=_s("City name."), days={"type": "integer", "description": "Number of days (1-10).",
                                       "minimum": 1, "maximum": 10}),
    _tool("convert_currency", "Convert an amount of money from one currency to another.",
          amount={"type": "number", "description": "Amount to convert."},
          from_currency=_s("ISO 4217 code of the source currency, e.g. USD."),
          to_currency=_s("ISO 4217 code of the target currency, e.g. EUR.")),
    _tool("search_flights", "Search flights between two airports on a date.",
          origin=_s("IATA code of the departure airport."), destination=_s("IATA code of the arrival airport."),
          date=_s("Departure date, YYYY-MM-DD.")),
    _tool("send_email", "Send an email.",
          to=_s("Recipient email address."), subject=_s("Subject line."), body=_s("Body text.")),
    _tool("create_calendar_event", "Create an event in the user's calendar.",
          title=_s("Event title."), date=_s("Date, YYYY-MM-DD."), start_time=_s("Start time, HH:MM (24-hour)."),
          duration_minutes={"type": "integer", "description": "Duration in minutes.", "minimum": 1}),
    _tool("set_timer", "Start a countdown timer.",
          minutes={"type": "integer", "description": "Length of the timer in minutes.", "minimum": 1},
          label=_s("What the timer is for.")),
    _tool("get_stock_price", "Get the latest price of a stock.", symbol=_s("Ticker symbol, e.g. AAPL.")),
    _tool("translate_text", "Translate a text into another language.",
          text=_s("Text to translate."),
          target_language=_s("Language to translate into.",
                             enum=["English", "French", "German", "Spanish", "Italian", "Japanese", "Portuguese"])),
    _tool("book_restaurant", "Book a table at a restaurant.",
          restaurant=_s("Restaurant name."), date=_s("Date, YYYY-MM-DD."), time=_s("Time, HH:MM (24-hour)."),
          party_size={"type": "integer", "description": "Number of people.", "minimum": 1}),
    _tool("get_directions", "Get directions between two places.",
          origin=_s("Starting place."), destination=_s("Destination."),
          mode=_s("Travel mode.", enum=["driving", "walking", "transit", "cycling"])),
    _tool("add_todo", "Add an item to the user's to-do list.",
          task=_s("What to do."), priority=_s("Priority.", enum=["low", "medium", "high"])),
    _tool("lookup_order", "Look up the status of an order.", order_id=_s("Order identifier, e.g. ORD-12345.")),
    _tool("play_music", "Play a song.", song=_s("Song title."), artist=_s("Artist name.")),
    _tool("calculate_tip", "Calculate the tip for a bill.",
          bill_amount={"type": "number", "description": "Bill amount."},
          tip_percent={"type": "number", "description": "Tip percentage, e.g. 15 for 15%."}),
    _tool("search_recipes", "Find recipes that use an ingredient and take at most some minutes.",
          ingredient=_s("Main ingredient."),
          max_minutes={"type": "integer", "description": "Maximum preparation time in minutes.", "minimum": 1}),
)}

CITIES = ("Paris", "Tokyo", "Nairobi", "Lima", "Toronto", "Berlin", "Sydney", "Mumbai", "Cairo", "Oslo", "Seoul",
          "Madrid", "Chicago", "Bangkok", "Dublin", "Prague", "Santiago", "Vienna", "Istanbul", "Hanoi", "Lisbon",
          "Montreal", "Auckland", "Helsinki", "Denver", "Nagoya", "Porto", "Accra", "Quito", "Zurich")
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "INR", "SEK", "NOK", "MXN", "BRL")
AIRPORTS = ("JFK", "LHR", "CDG", "HND", "SFO", "FRA", "AMS", "SIN", "DXB", "ORD", "MAD", "FCO", "YYZ", "SYD", "GRU")
PEOPLE = ("alice", "bob", "carmen", "deepak", "elena", "farid", "grace", "hiro", "ines", "jamal", "kirsten", "luca")
DOMAINS = ("example.com", "example.org", "mail.example.net")
SUBJECTS = ("Team lunch", "Quarterly report", "Project kickoff", "Travel plans", "Invoice 2291", "Weekend hike",
            "Meeting notes", "Budget review", "Welcome aboard", "Book club")
BODIES = ("See you at noon.", "Please find the figures attached.", "Can we move it to Friday?",
          "Thanks for your help today.", "The draft is ready for review.", "Let me know if the time works.",
          "I will bring the slides.", "Happy to join.")
EVENTS = ("Dentist appointment", "Yoga class", "Sprint planning", "Piano lesson", "Coffee with Sam",
          "Parent-teacher meeting", "Code review", "Gym session", "Team retrospective", "Haircut")
STOCKS = ("AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "META", "IBM", "ORCL", "SAP", "INTC", "NFLX")
PHRASES = ("Where is the train station?", "Good morning", "Thank you very much", "How much does this cost?",
           "The meeting starts at nine", "I would like a coffee", "See you tomorrow", "Happy birthday",
           "Where can I buy tickets?", "The museum is closed today")
LANGS = ("French", "German", "Spanish", "Italian", "Japanese", "Portuguese", "English")
RESTAURANTS = ("Blue Lotus", "Trattoria Roma", "The Green Fork", "Sakura House", "Casa Verde", "Le Petit Jardin",
               "Harbor Grill", "Spice Route")
PLACES = ("Central Station", "City Museum", "Riverside Park", "the airport", "Main Street Library", "Harbor Market",
          "Union Square", "the old town hall")
MODES = ("driving", "walking", "transit", "cycling")
TODOS = ("Buy groceries", "Call the plumber", "Renew passport", "Water the plants", "Pay electricity bill",
         "Book dentist visit", "Return library books", "Back up laptop")
SONGS = (("Bohemian Rhapsody", "Queen"), ("Imagine", "John Lennon"), ("Hey Jude", "The Beatles"),
         ("Clair de Lune", "Claude Debussy"), ("Superstition", "Stevie Wonder"), ("Dancing Queen", "ABBA"),
         ("Respect", "Aretha Franklin"), ("Yesterday", "The Beatles"), ("Africa", "Toto"), ("Vogue", "Madonna"))
INGREDIENTS = ("chickpeas", "salmon", "spinach", "mushrooms", "lentils", "tofu", "eggplant", "chicken", "rice",
               "pumpkin")
TIMER_LABELS = ("pasta", "laundry", "tea", "break", "bread", "workout", "study session", "eggs")


def _date(r: random.Random) -> str:
    return f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"


def _time(r: random.Random) -> str:
    return f"{r.randint(7, 21):02d}:{r.choice((0, 15, 30, 45)):02d}"


def _money(r: random.Random) -> int | float:
    v = r.choice((r.randint(5, 2000), r.randint(10, 999) + r.choice((0.5, 0.25, 0.75))))
    return v


def _num_text(v: int | float) -> str:
    return str(v) if isinstance(v, int) else f"{v:.2f}".rstrip("0").rstrip(".")


# A request builder returns (the request phrase, the call it determines).
Call = dict[str, Any]
Builder = Callable[[random.Random], tuple[str, Call]]


def _call(name: str, **arguments: Any) -> Call:
    return {"name": name, "arguments": arguments}


def _weather(r):
    city, unit = r.choice(CITIES), r.choice(("celsius", "fahrenheit"))
    return (r.choice((f"what's the weather in {city} right now in {unit}",
                      f"tell me the current weather in {city}, in {unit}")),
            _call("get_weather", city=city, unit=unit))


def _forecast(r):
    city, days = r.choice(CITIES), r.randint(2, 10)
    return (f"get the {days}-day weather forecast for {city}", _call("get_forecast", city=city, days=days))


def _currency(r):
    a, b = r.sample(CURRENCIES, 2)
    amount = _money(r)
    return (f"convert {_num_text(amount)} {a} to {b}",
            _call("convert_currency", amount=amount, from_currency=a, to_currency=b))


def _flights(r):
    a, b = r.sample(AIRPORTS, 2)
    d = _date(r)
    return (f"search for flights from {a} to {b} on {d}", _call("search_flights", origin=a, destination=b, date=d))


def _email(r):
    to = f"{r.choice(PEOPLE)}@{r.choice(DOMAINS)}"
    subject, body = r.choice(SUBJECTS), r.choice(BODIES)
    return (f'send an email to {to} with the subject "{subject}" and the body "{body}"',
            _call("send_email", to=to, subject=subject, body=body))


def _event(r):
    title, d, t, dur = r.choice(EVENTS), _date(r), _time(r), r.choice((15, 30, 45, 60, 90, 120))
    return (f'add "{title}" to my calendar on {d} at {t} for {dur} minutes',
            _call("create_calendar_event", title=title, date=d, start_time=t, duration_minutes=dur))


def _timer(r):
    m, label = r.randint(1, 90), r.choice(TIMER_LABELS)
    return (f'set a {m}-minute timer labeled "{label}"', _call("set_timer", minutes=m, label=label))


def _stock(r):
    s = r.choice(STOCKS)
    return (f"look up the latest stock price of {s}", _call("get_stock_price", symbol=s))


def _translate(r):
    text, lang = r.choice(PHRASES), r.choice(LANGS)
    return (f'translate "{text}" into {lang}', _call("translate_text", text=text, target_language=lang))


def _restaurant(r):
    name, d, t, n = r.choice(RESTAURANTS), _date(r), _time(r), r.randint(1, 10)
    people = "person" if n == 1 else "people"
    return (f"book a table for {n} {people} at {name} on {d} at {t}",
            _call("book_restaurant", restaurant=name, date=d, time=t, party_size=n))


def _directions(r):
    a, b = r.sample(PLACES, 2)
    mode = r.choice(MODES)
    return (f"get {mode} directions from {a} to {b}", _call("get_directions", origin=a, destination=b, mode=mode))


def _todo(r):
    task, pr = r.choice(TODOS), r.choice(("low", "medium", "high"))
    return (f'add "{task}" to my to-do list with {pr} priority', _call("add_todo", task=task, priority=pr))


def _order(r):
    oid = f"ORD-{r.randint(10000, 99999)}"
    return (f"check the status of order {oid}", _call("lookup_order", order_id=oid))


def _music(r):
    song, artist = r.choice(SONGS)
    return (f'play "{song}" by {artist}', _call("play_music", song=song, artist=artist))


def _tip(r):
    bill, pct = _money(r), r.choice((10, 12, 15, 18, 20, 22, 25))
    return (f"calculate a {pct}% tip on a bill of {_num_text(bill)}",
            _call("calculate_tip", bill_amount=bill, tip_percent=pct))


def _recipes(r):
    ing, mins = r.choice(INGREDIENTS), r.choice((15, 20, 30, 45, 60))
    return (f"find recipes with {ing} that take at most {mins} minutes",
            _call("search_recipes", ingredient=ing, max_minutes=mins))


BUILDERS: tuple[Builder, ...] = (_weather, _forecast, _currency, _flights, _email, _event, _timer, _stock,
                                 _translate, _restaurant, _directions, _todo, _order, _music, _tip, _recipes)

SYSTEM_TEMPLATE = (
    "You are a function calling AI model. You are provided with function signatures within <tools></tools> XML "
    "tags. You may call one or more functions to assist with the user query. Don't make assumptions about what "
    "values to plug into functions. Here are the available tools:\n<tools>\n{tools}\n</tools>\n"
    "For each function call, return a JSON object with the function name and arguments within "
    "<tool_call></tool_call> XML tags as follows:\n<tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-dict>}}\n</tool_call>\n'
    "Make the calls in the order the user asks for them, one <tool_call> block per call."
)


@dataclass(frozen=True)
class AgentProblem:
    """One tool-calling task: the tools shown, the user request and the calls it determines."""

    system: str
    user: str
    tools: tuple[dict[str, Any], ...]
    calls: tuple[Call, ...]
    shots: tuple[tuple[str, str], ...] = ()  # worked examples before the request: (user, assistant) turns


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def tool_task(rng: random.Random) -> AgentProblem:
    n = 1 if rng.random() < 0.6 else 2
    picks = rng.sample(BUILDERS, n)
    parts = [b(rng) for b in picks]
    if n == 1:
        user = _capital(parts[0][0]) + rng.choice((".", ", please.", "?"))
        if user.endswith("?") and not parts[0][0].startswith("what"):
            user = "Could you " + parts[0][0] + "?"
    else:
        user = _capital(f"{parts[0][0]}, and then {parts[1][0]}.") if rng.random() < 0.5 else \
            f"First {parts[0][0]}. After that, {parts[1][0]}."
    calls = tuple(c for _, c in parts)
    names = sorted({c["name"] for c in calls})
    extra = rng.sample([k for k in TOOLS if k not in names], rng.randint(2, 4))
    shown = [TOOLS[k] for k in [*names, *extra]]
    shown.sort(key=lambda t: t["function"]["name"])
    rng.shuffle(shown)
    system = SYSTEM_TEMPLATE.format(tools="\n".join(json.dumps(t) for t in shown))
    return AgentProblem(system, user, tuple(shown), calls)


@dataclass(frozen=True)
class WorkplaceProblem:
    """A multi-turn task on the generated workplace sandbox (`m2rl.envs`, environment `workplace_assistant`)."""

    system: str
    user: str
    tools: tuple[str, ...]  # the offered tools, by name: the episode passes their schemas to the chat template
    task: Any  # m2rl.envs.workplace.tasks.Task


def workplace(rng: random.Random) -> WorkplaceProblem:
    """Opt-in kind: look a row up in the generated workplace sandbox and act on it (or act on a given id)."""
    from m2rl.envs.workplace import tasks

    task = tasks.draw(rng)
    return WorkplaceProblem(tasks.SYSTEM + " " + tasks.INSTRUCTION, task.user, tuple(tasks.TOOLKIT_TOOLS[task.toolkit]),
                            task)


# requests whose call has one or two arguments, each stated literally in the request
SIMPLE_BUILDERS: tuple[Builder, ...] = (_weather, _forecast, _timer, _stock, _translate, _todo, _order, _music,
                                        _recipes)


def _request(phrase: str, rng: random.Random) -> str:
    return _capital(phrase) + rng.choice((".", ", please."))


def _one_call(rng: random.Random, template: str, schema: Callable[[dict[str, Any]], dict[str, Any]]) -> AgentProblem:
    """A one-call request after a worked example (see `tool_single`), the two tools' `schema`s in `template`."""
    builder, other = rng.sample(SIMPLE_BUILDERS, 2)
    phrase, call = builder(rng)
    _, distractor = other(rng)
    same = rng.random() < 0.75
    while True:  # the example: no argument value in common with the task's call
        ex_phrase, ex_call = (builder if same else other)(rng)
        if all(ex_call["arguments"].get(k) != v for k, v in call["arguments"].items()):
            break
    shown = [schema(TOOLS[call["name"]]), schema(TOOLS[distractor["name"]])]
    rng.shuffle(shown)
    system = template.format(tools="\n".join(json.dumps(t) for t in shown))
    shot = (_request(ex_phrase, rng), f"<tool_call>\n{json.dumps(ex_call)}\n</tool_call>")
    return AgentProblem(system, _request(phrase, rng), tuple(shown), (call,), shots=(shot,))


def tool_single(rng: random.Random) -> AgentProblem:
    """Opt-in kind: one request, one call with one or two arguments copied from it; two tools shown, and before
    the request a worked example as a chat turn: three times in four a call to the same tool (all its values
    different: the answer adapts the example), else to the other tool (the answer takes the example's format
    but the name and arguments from the schema). A warm-up for models too small for the standard mix
    (options.kinds: [tool_single]); SmolLM2-135M solves about half of the first case and almost none of the second."""
    return _one_call(rng, SYSTEM_TEMPLATE, lambda tool: tool)


# `tool_brief`'s system message: the tools and the answer format, without the standard preamble
BRIEF_TEMPLATE = (
    "Call a tool for the user's request. Tools:\n<tools>\n{tools}\n</tools>\n"
    'Answer with the call only:\n<tool_call>\n{{"name": <function-name>, "arguments": <args-dict>}}\n</tool_call>'
)


def brief_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool's function object with each parameter's type and description only (no `type: function` wrapper,
    no enum, bounds or `additionalProperties`): every value the call needs is stated in the request."""
    f = tool["function"]
    props = {k: {"type": v["type"], "description": v["description"]} for k, v in f["parameters"]["properties"].items()}
    return {"name": f["name"], "description": f["description"],
            "parameters": {"type": "object", "properties": props, "required": list(f["parameters"]["required"])}}


def tool_brief(rng: random.Random) -> AgentProblem:
    """Opt-in kind: `tool_single`'s tasks (the same draws for the same seed) in a prompt of about 60% the
    length: a two-sentence system message and the tools as `brief_schema`s (~260 tokens for SmolLM2 instead of
    ~420), for a CPU study where every prompt token is trained on (options.kinds: [tool_brief])."""
    return _one_call(rng, BRIEF_TEMPLATE, brief_schema)


KINDS = (tool_task,)
EXTRA_KINDS = (workplace, tool_single, tool_brief)  # drawn only when asked for by name (options.kinds: [tool_single])


def problems(rng: random.Random, count: int, kinds: Sequence[Callable] = KINDS) -> list[Any]:
    return draw_unique(list(kinds), count, rng, lambda p: p.user)


def to_record(p: AgentProblem | WorkplaceProblem) -> dict[str, Any]:
    if isinstance(p, WorkplaceProblem):
        return {"prompt": chat(p.user, system=p.system), "label": "",
                "verifier": {"type": "env", "env": "workplace_assistant", "sandbox": "generated", "sandbox_seed": 0,
                             "ground_truth": p.task.ground_truth(), "category": f"workplace_assistant_{p.task.toolkit}",
                             "kind": p.task.level, "tools": list(p.tools)}}
    prompt = chat(p.user, system=p.system)
    for user, assistant in reversed(p.shots):  # the worked examples go between the system message and the request
        prompt[1:1] = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"prompt": prompt, "label": "",
            "verifier": {"type": "tool_calls", "ground_truth": [json.loads(json.dumps(c)) for c in p.calls],
                         "tools": [json.loads(json.dumps(t)) for t in p.tools]}}
