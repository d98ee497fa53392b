#!/usr/bin/env python3
"""The public API of a crate, one line per item, from rustdoc's JSON output.

usage: public_api.py TARGET/doc/CRATE.json

Walks the crate from its root as a user sees it (re-exports under the name they are exported
with, modules recursively) and prints every public item: functions, types, traits, constants,
macros, the public fields and variants of types, the methods of their inherent impls, and the
traits they implement (auto traits and blanket impls left out). Sorted, so that a diff shows
exactly what changed. scripts/public-api.sh compares it with docs/public-api/CRATE.txt.
"""
import json
import sys

KINDS = {"struct", "enum", "trait", "function", "type_alias", "constant", "static", "macro",
         "union", "proc_macro", "trait_alias"}


def main():
    doc = json.load(open(sys.argv[1]))
    index, paths = doc["index"], doc["paths"]
    root = index[str(doc["root"])]
    crate = root["name"]
    out = set()
    seen = set()

    def item(i):
        return index.get(str(i))

    def external(i):
        p = paths.get(str(i))
        return "::".join(p["path"]) if p else "?"

    def walk_module(module, prefix):
        for i in module["inner"]["module"]["items"]:
            it = item(i)
            if it is None or it["visibility"] != "public":
                continue
            kind = next(iter(it["inner"]))
            if kind == "use":
                use = it["inner"]["use"]
                target = item(use["id"]) if use["id"] is not None else None
                name = use["name"]
                if use["is_glob"]:
                    out.add(f"{prefix}::* (glob re-export of {use['source']})")
                elif target is None:
                    out.add(f"{prefix}::{name} (re-export of {external(use['id'])})")
                else:
                    walk_item(target, f"{prefix}::{name}")
            else:
                walk_item(it, f"{prefix}::{it['name']}")

    def walk_item(it, path):
        kind = next(iter(it["inner"]))
        if kind == "module":
            out.add(f"mod {path}")
            if (it["id"], path) not in seen:
                seen.add((it["id"], path))
                walk_module(it, path)
            return
        if kind not in KINDS:
            return
        out.add(f"{kind} {path}")
        inner = it["inner"][kind]
        if kind == "struct":
            fields = inner["kind"].get("plain", {}).get("fields", []) if isinstance(inner["kind"], dict) else []
            for f in fields:
                field = item(f)
                if field and field["visibility"] == "public":
                    out.add(f"field {path}.{field['name']}")
            impls(inner.get("impls", []), path)
        elif kind == "enum":
            for v in inner["variants"]:
                out.add(f"variant {path}::{item(v)['name']}")
            impls(inner.get("impls", []), path)
        elif kind == "union":
            impls(inner.get("impls", []), path)
        elif kind == "trait":
            for m in inner["items"]:
                out.add(f"trait-item {path}::{item(m)['name']}")

    def impls(ids, path):
        for i in ids:
            imp = item(i)
            if imp is None:
                continue
            inner = imp["inner"]["impl"]
            if inner.get("is_synthetic") or inner.get("blanket_impl") is not None:
                continue
            trait = inner.get("trait")
            if trait is not None:
                name = trait.get("path") or trait.get("name")
                out.add(f"impl {name.split('::')[-1]} for {path}")
                continue
            for m in inner["items"]:
                method = item(m)
                if method and method["visibility"] == "public":
                    out.add(f"{next(iter(method['inner']))} {path}::{method['name']}")

    walk_module(root, crate)
    print("\n".join(sorted(out)))


if __name__ == "__main__":
    main()
