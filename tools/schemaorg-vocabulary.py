#!/usr/bin/env python3
"""Writes src/seo/schemaorg.tsv, the schema.org vocabulary edgeseo's audit checks JSON-LD against,
from a release's schemaorg-current-https.jsonld (schema.org, CC BY-SA 3.0):

    tools/schemaorg-vocabulary.py ../shared/data/schemaorg/30.0/schemaorg-current-https.jsonld 30.0

Lines: `# release`, then `C<TAB>Type<TAB>supertypes` and `P<TAB>property<TAB>domain types`
(space-separated, sorted)."""
import json
import sys


def ids(value):
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    return sorted(i["@id"].removeprefix("schema:") for i in items if "@id" in i and i["@id"].startswith("schema:"))


def main(path, release):
    graph = json.load(open(path, encoding="utf-8"))["@graph"]
    classes, properties = {}, {}
    for node in graph:
        node_id = node.get("@id", "")
        if not node_id.startswith("schema:"):
            continue
        name = node_id.removeprefix("schema:")
        types = node.get("@type", [])
        types = types if isinstance(types, list) else [types]
        if "rdfs:Class" in types:
            classes[name] = ids(node.get("rdfs:subClassOf"))
        if "rdf:Property" in types:
            properties[name] = ids(node.get("schema:domainIncludes"))
    out = open("src/seo/schemaorg.tsv", "w", encoding="utf-8")
    out.write(f"# schema.org {release} (CC BY-SA 3.0), written by tools/schemaorg-vocabulary.py\n")
    for name in sorted(classes):
        out.write(f"C\t{name}\t{' '.join(classes[name])}\n")
    for name in sorted(properties):
        out.write(f"P\t{name}\t{' '.join(properties[name])}\n")
    print(f"{len(classes)} types, {len(properties)} properties")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
