"""`platform erase`, `platform objection`, `platform compliance-report`: a data subject's rights and the evidence
an auditor reads (pipelines/governance). The first two run as the `privacy` Vault role."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.settings import get_settings
from pipelines.usecases.spec import resolve_usecase

PRIVACY_COMMANDS = {"erase", "objection"}


def add_commands(commands) -> None:
    erase = commands.add_parser("erase", help="erase a data subject everywhere the platform keeps it (UAE PDPL Art. "
                                              "15); idempotent")  # fmt: skip
    erase.add_argument("usecase")
    erase.add_argument("--subject", required=True, help="the subject's identifier, e.g. a tail number (N14228)")
    erase.set_defaults(handler=run)
    objection = commands.add_parser("objection", help="a subject objects to automated decisions (UAE PDPL Art. "
                                                      "18): its items are answered human_review, unscored")  # fmt: skip
    objection.add_argument("usecase")
    objection.add_argument("--subject", required=True, help="the subject's identifier, e.g. a tail number")
    objection.add_argument("--withdraw", action="store_true", help="the subject withdraws the objection")
    objection.set_defaults(handler=run)
    report = commands.add_parser("compliance-report", help="the evidence pack of a use case (HTML, JSON, ML-BOM)")
    report.add_argument("usecase")
    report.add_argument("--version", type=int, help="one model version (default: every version)")
    report.add_argument("--out", type=Path, required=True, help="the folder to write it to")
    report.add_argument("--vault-audit", type=Path, help="the Vault audit device's file (default: the platform's)")
    report.set_defaults(handler=run)


def run(args: argparse.Namespace) -> None:
    settings = get_settings()
    usecase = resolve_usecase(settings, args.usecase)
    if args.command == "erase":
        from pipelines.governance.subjects import erase

        print(erase(settings, usecase, args.subject).render())
    elif args.command == "objection":
        from pipelines.governance.subjects import object_to_automated_decisions

        hashed = object_to_automated_decisions(settings, usecase, args.subject, withdraw=args.withdraw)
        state = "withdrawn: its items are scored again" if args.withdraw else "entered: its items are answered " \
            "human_review, unscored (within PLATFORM_API_KEY_MAX_AGE_S in a running service)"  # fmt: skip
        print(f"{usecase.name}: objection of subject {hashed[:12]}… {state}")
    else:
        from pipelines.governance.evidence import write_report

        doc = write_report(settings, usecase.name, args.out, args.version, args.vault_audit)
        verdict = "VERIFIED" if doc["integrity"]["ok"] else "INTEGRITY FAILURE: " + "; ".join(
            doc["integrity"]["problems"])  # fmt: skip
        print(f"{verdict}\nCompliance report of {usecase.name}: {args.out / 'compliance.html'} (and compliance.json, "
              f"{len(doc['versions'])} ML-BOM(s) mlbom-*.cdx.json)")  # fmt: skip
