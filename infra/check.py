"""Offline checks of infra/template.yaml, run by scripts/test-extra.d/infra.sh.

    python infra/check.py sam-schema TEMPLATE
        Validate the properties of every AWS::Serverless::* resource against the SAM resource
        schemas that cfn-lint ships, strictly (no unknown property at any depth), taking any
        intrinsic function (!Ref, !GetAtt, !Sub, ...) as valid where it stands. cfn-lint skips a
        function event's properties when one of them is an intrinsic (an HttpApi event's
        `ApiId: !Ref HttpApi`, an SQS event's `Queue: !GetAtt Queue.Arn`), so a misspelt key
        inside them (`Auth: {Authoriser: NONE}`) would pass it, and the SAM translator
        ignores unknown keys inside an event's Auth.
    python infra/check.py translate TEMPLATE OUT.json
        Transform the SAM template into plain CloudFormation with aws-sam-translator, as the
        AWS::Serverless-2016-10-31 transform would, and write it to OUT.json (for cfn-lint).
        Local CodeUri/ContentUri/DefinitionUri paths become s3:// placeholders first, as
        `sam package` would make them.
    python infra/check.py functions TEMPLATE WORKSPACE_ROOT
        Every crate functions/<crate> has exactly one AWS::Serverless::Function with
        BuildMethod rust-cargolambda, Binary <crate> and logical id <PascalCase crate>Function,
        and every rust-cargolambda function builds a crate that exists.

Each exits 1 with one line per problem. Nothing here touches the network: the region comes from
AWS_DEFAULT_REGION (set to us-east-1 when unset) and no AWS config or credentials are read.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

# Before boto3 is imported (by samtranslator): a fixed region, and nothing read from ~/.aws.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ.pop("AWS_PROFILE", None)

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
BUILD_METHOD = "rust-cargolambda"
# Properties holding a local path that `sam package` uploads, by resource type.
LOCAL_URI_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::Api": "DefinitionUri",
    "AWS::Serverless::HttpApi": "DefinitionUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}


def fail(problems: list[str], what: str) -> None:
    for problem in problems:
        print(f"infra: {problem}", file=sys.stderr)
    print(f"infra: {what}: {len(problems)} problem(s)", file=sys.stderr)
    sys.exit(1)


def load_template(path: Path) -> dict[str, Any]:
    """The template as SAM reads it (short-form intrinsics such as !Ref become dicts)."""
    from samtranslator.yaml_helper import yaml_parse

    try:
        template = yaml_parse(path.read_text(encoding="utf-8"))
    except Exception as err:  # noqa: BLE001 - any parse error is reported the same way
        fail([f"{path}: cannot parse: {err}"], "template")
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        fail([f"{path}: no Resources mapping"], "template")
    return template


def with_s3_placeholders(template: dict[str, Any]) -> dict[str, Any]:
    """A copy whose local code and definition paths are s3:// URIs, as after `sam package`."""
    out = copy.deepcopy(template)

    def replace(props: dict[str, Any], key: str, name: str) -> None:
        value = props.get(key)
        if isinstance(value, str) and not value.startswith("s3://"):
            props[key] = f"s3://herald-placeholder/{name}.zip"

    globals_function = (out.get("Globals") or {}).get("Function")
    if isinstance(globals_function, dict):
        replace(globals_function, "CodeUri", "Globals")
    for logical_id, resource in out["Resources"].items():
        if not isinstance(resource, dict):
            continue
        key = LOCAL_URI_PROPERTIES.get(resource.get("Type", ""))
        props = resource.get("Properties")
        if key and isinstance(props, dict):
            replace(props, key, logical_id)
    return out


def translate(template_path: Path, out_path: Path) -> None:
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = with_s3_placeholders(load_template(template_path))
    try:
        translated = Translator(None, Parser()).translate(
            template,
            parameter_values={},
            # AWS managed policy names resolve from the translator's bundled list; never ask IAM.
            get_managed_policy_map=lambda: {},
        )
    except InvalidDocumentException as err:
        fail([cause.message for cause in err.causes], f"{template_path}: SAM transform failed")
    except Exception as err:  # noqa: BLE001 - the translator raises several kinds
        fail([f"{type(err).__name__}: {err}"], f"{template_path}: SAM transform failed")
    out_path.write_text(json.dumps(translated, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"infra: translated {template_path} ({len(translated.get('Resources', {}))} resources)")


def is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = next(iter(value))
    return key == "Ref" or key == "Condition" or key.startswith("Fn::")


def schema_errors(validator: Any, instance: Any) -> list[tuple[str, str]]:
    """(path, message) per problem; for anyOf/oneOf, the errors of the branch that got furthest."""

    def explain(error: Any) -> list[tuple[str, str]]:
        if error.validator in ("anyOf", "oneOf") and error.context:
            branches: dict[Any, list[Any]] = {}
            for sub in error.context:
                branches.setdefault(sub.relative_schema_path[0], []).append(sub)
            # The branch that matched the most: its shallowest error is deepest (it accepted the
            # event's `Type`, say), then it has the fewest errors.
            best = max(branches.values(), key=lambda errs: (min(len(e.absolute_path) for e in errs), -len(errs)))
            return [item for sub in best for item in explain(sub)]
        path = ".".join(str(p) for p in error.absolute_path) or "(top)"
        return [(path, error.message)]

    return [item for error in validator.iter_errors(instance) for item in explain(error)]


def sam_schema(template_path: Path) -> None:
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
    from jsonschema import Draft7Validator, validators

    def tolerate_intrinsics(check: Any) -> Any:
        def run(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
            if not is_intrinsic(instance):
                yield from check(validator, value, instance, schema) or ()

        return run

    Strict = validators.extend(
        Draft7Validator, {name: tolerate_intrinsics(check) for name, check in Draft7Validator.VALIDATORS.items()}
    )
    region = os.environ["AWS_DEFAULT_REGION"]
    problems: list[str] = []
    checked = 0
    for logical_id, resource in load_template(template_path)["Resources"].items():
        kind = resource.get("Type", "") if isinstance(resource, dict) else ""
        if not kind.startswith("AWS::Serverless::"):
            continue
        try:
            schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, kind).schema
        except Exception as err:  # noqa: BLE001 - an unknown type, or cfn-lint's layout changed
            problems.append(f"{logical_id}: no schema for {kind} in cfn-lint ({type(err).__name__}: {err})")
            continue
        checked += 1
        for path, message in schema_errors(Strict(schema), resource.get("Properties") or {}):
            problems.append(f"{logical_id}.Properties.{path}: {message}")
    if problems:
        fail(problems, f"{template_path}: SAM resources do not match their schemas")
    print(f"infra: {checked} SAM resource(s) match their schemas strictly")


def pascal_case(crate: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in crate.replace("_", "-").split("-") if part)


def crate_problems(crate_dir: Path) -> list[str]:
    """A function crate's package must be named after its folder and build a binary of that name."""
    name = crate_dir.name
    manifest = crate_dir / "Cargo.toml"
    try:
        cargo = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        return [f"{manifest}: cannot read: {err}"]
    problems = []
    package = (cargo.get("package") or {}).get("name")
    if package != name:
        problems.append(f"{manifest}: package name is {package!r}; a function crate is named after its folder ({name!r})")
    bins = {b.get("name") for b in cargo.get("bin") or [] if isinstance(b, dict)}
    has_default_bin = (crate_dir / "src" / "main.rs").is_file() and cargo.get("package", {}).get("autobins", True)
    if name not in bins and not (has_default_bin and package == name):
        problems.append(f"{manifest}: no binary target named {name!r} (cargo lambda builds `--bin {name}`)")
    return problems


def functions(template_path: Path, root: Path) -> None:
    resources = load_template(template_path)["Resources"]
    crates = sorted(p.parent for p in (root / "functions").glob("*/Cargo.toml"))
    problems: list[str] = []
    if not crates:
        problems.append(f"no crates under {root / 'functions'} (is {root} the workspace root?)")

    by_binary: dict[str, list[str]] = {}
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict) or resource.get("Type") != SERVERLESS_FUNCTION:
            continue
        metadata = resource.get("Metadata") or {}
        build_method = metadata.get("BuildMethod")
        binary = (metadata.get("BuildProperties") or {}).get("Binary")
        if build_method != BUILD_METHOD:
            problems.append(f"{logical_id}: Metadata.BuildMethod is {build_method!r}, expected {BUILD_METHOD!r}")
        if not isinstance(binary, str) or not binary:
            problems.append(f"{logical_id}: Metadata.BuildProperties.Binary is missing (the crate under functions/ it builds)")
            continue
        by_binary.setdefault(binary, []).append(logical_id)

    crate_names = {c.name for c in crates}
    for crate_dir in crates:
        name = crate_dir.name
        problems.extend(crate_problems(crate_dir))
        expected_id = f"{pascal_case(name)}Function"
        ids = by_binary.get(name, [])
        if not ids:
            problems.append(
                f"functions/{name} has no {SERVERLESS_FUNCTION} in {template_path}: add {expected_id} "
                f"with Metadata BuildMethod {BUILD_METHOD}, BuildProperties.Binary {name}"
            )
        elif len(ids) > 1:
            problems.append(f"functions/{name} is built by {len(ids)} functions ({', '.join(sorted(ids))}); expected exactly one, {expected_id}")
        elif ids[0] != expected_id:
            problems.append(f"functions/{name} is built by {ids[0]}; its logical id must be {expected_id}")
    for binary, ids in sorted(by_binary.items()):
        if binary not in crate_names:
            problems.append(f"{', '.join(sorted(ids))}: Binary {binary!r} is not a crate under functions/")

    if problems:
        fail(problems, f"{template_path}: function crates and template disagree")
    print(f"infra: {len(crates)} function crate(s), each with its {SERVERLESS_FUNCTION}: {', '.join(sorted(crate_names))}")


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[1] == "sam-schema":
        sam_schema(Path(argv[2]))
    elif len(argv) == 4 and argv[1] == "translate":
        translate(Path(argv[2]), Path(argv[3]))
    elif len(argv) == 4 and argv[1] == "functions":
        functions(Path(argv[2]), Path(argv[3]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
