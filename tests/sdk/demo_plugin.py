"""A tiny plugin that exercises every SDK capability without knowing Kubernetes."""

from __future__ import annotations

import json

from plugin.sdk import Eof, Event, Instance, Plugin, PluginError, Timeout

FIELDS = [
    {"name": "demo.word", "type": "string", "desc": "the payload"},
    {"name": "demo.len", "type": "uint64", "desc": "payload length"},
    {"name": "demo.chars", "type": "string", "isList": True, "desc": "characters",
     "arg": {"isIndex": True}},
    {"name": "demo.key", "type": "string", "desc": "arg echo", "arg": {"isKey": True,
                                                                       "isRequired": True}},
]


class DemoExtractor:
    fields_json = json.dumps(FIELDS)

    def parse(self, data: bytes) -> str:
        if data == b"unparsable":
            raise ValueError("cannot parse")
        return data.decode()

    def compile(self, field_id, arg):
        name = FIELDS[field_id]["name"]
        if name == "demo.word":
            return lambda doc: None if doc == "" else [doc]
        if name == "demo.len":
            return lambda doc: [str(len(doc))]
        if name == "demo.chars":
            if arg is None:
                return lambda doc: list(doc)
            return lambda doc: [doc[arg]] if arg < len(doc) else None
        if arg is None:
            raise PluginError("demo.key needs an argument")
        if arg == "boom":
            def boom(doc):
                raise RuntimeError("boom")
            return boom
        return lambda doc: [f"{arg}={doc}"]


class DemoInstance(Instance):
    def __init__(self, words: list[str]) -> None:
        self.words = words
        self.calls = 0

    def next_batch(self):
        self.calls += 1
        if self.calls == 1:
            raise Timeout
        if not self.words:
            raise Eof
        batch, self.words = self.words[:2], self.words[2:]
        return [Event(w.encode(), 1000 + i) for i, w in enumerate(batch)]

    def progress(self):
        return (50.0, "half")


class DemoPlugin(Plugin):
    name = "demo"
    description = "SDK demo"
    contact = "nobody"
    version = "1.2.3"
    id = 999
    event_source = "demo"
    init_schema = '{"type":"object"}'
    extractor = DemoExtractor()

    def __init__(self, config: str) -> None:
        if config == "fail":
            raise PluginError("bad config secret=hunter2")
        super().__init__(config)

    def open(self, params: str) -> Instance:
        if params == "fail":
            raise PluginError("cannot open")
        return DemoInstance(params.split(",") if params else [])

    def list_open_params(self) -> str:
        return json.dumps([{"value": "a,b,c", "desc": "words"}])

    @classmethod
    def redact(cls, message: str) -> str:
        return message.replace("hunter2", "***")
