#!/usr/bin/env python3
# A chat bot for `wsx serve --exec-shared 'python3 docs/examples/chatbot.py'` (docs/exec.md).
import json, sys

for line in sys.stdin:
    event = json.loads(line)
    who = event["id"]
    if event["type"] == "join":
        print(json.dumps({"text": f"* {who} joined"}), flush=True)
    elif event["type"] == "leave":
        print(f"* {who} left", flush=True)  # a plain line goes to everyone too
    elif event.get("text") == "/whoami":
        print(json.dumps({"to": who, "text": f"you are {who}"}), flush=True)
    else:
        print(json.dumps({"text": f"{who}: {event.get('text', '(binary)')}"}), flush=True)
