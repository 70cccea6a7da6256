"""The ``entitystream`` command: broker, replay, run, inspect, report, demo."""
import argparse
import logging
import sys
import time

__all__ = ["main"]


def _broker(argv):
    from deploy import broker
    return broker.main(argv)


def _replay(argv):
    parser = argparse.ArgumentParser(prog="entitystream replay",
                                     description="Publish seed files or a corpus as article "
                                                 "messages, at once or paced like a live feed.")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="seeds directory or manifest.json, Reuters reut2-*.sgm (or their "
                             "directory), or .jsonl files")
    parser.add_argument("--topic", required=True, help="destination topic")
    parser.add_argument("--bootstrap-servers", default=None,
                        help="default $KAFKA_BOOTSTRAP_SERVERS, else the local broker")
    parser.add_argument("--partitions", type=int, default=1,
                        help="partitions if the topic is created (default %(default)s)")
    parser.add_argument("--order", choices=("time", "input"), default="time",
                        help="publication order (default) or the order read")
    parser.add_argument("--limit", type=int, default=None, help="send at most this many")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=None, metavar="X",
                      help="pace by publication time: X seconds of it per second of wall "
                           "clock (3600: an hour of the feed each second)")
    pace.add_argument("--rate", type=float, default=None, metavar="N",
                      help="pace by count: N articles per second")
    parser.add_argument("--loop", action="store_true",
                        help="again and again (until Ctrl-C or --limit), each cycle's "
                             "publication times moved forward by the span, ids made fresh")
    parser.add_argument("--rebase-time", action="store_true",
                        help="shift publication times so the first article is now "
                             "(live-like runs; use with --speed 1 or --rate)")
    from connectors import kafka_security
    kafka_security.add_arguments(parser)
    args = parser.parse_args(argv)
    from connectors.replay import publish, publish_paced, read_articles
    from pipeline.run import resolve_bootstrap
    from pipeline.settings import Settings
    security = kafka_security.from_args(args)
    bootstrap = resolve_bootstrap(Settings(bootstrap_servers=args.bootstrap_servers,
                                           kafka_security=security))
    kafka_security.check_connection(bootstrap, security)
    skipped = {}
    articles = list(read_articles(args.paths, skipped))
    paced = args.speed is not None or args.rate is not None or args.loop or args.rebase_time
    if args.limit is not None and not args.loop:
        articles = articles[:args.limit]
    if args.rebase_time and args.speed is not None and args.speed > 1:
        print(f"warning: --rebase-time with --speed {args.speed:g} puts publication times "
              "ahead of the clock; brokers refuse timestamps over an hour ahead "
              "(message.timestamp.after.max.ms)", file=sys.stderr)
    from pipeline.status import progress_bar
    started = time.monotonic()

    def progress(sent, total):
        elapsed = time.monotonic() - started
        line = (progress_bar(sent, total, elapsed) if total else
                f"{sent} articles {sent / elapsed if elapsed > 0 else 0:>6.0f}/s")
        print(f"\r  {line}", end="", file=sys.stderr, flush=True)

    newest = None
    if paced:
        import signal
        import threading
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        sent, newest = publish_paced(
            articles, bootstrap_servers=bootstrap, topic=args.topic,
            partitions=args.partitions, order=args.order, speed=args.speed, rate=args.rate,
            loop=args.loop, rebase_time=args.rebase_time, limit=args.limit,
            progress=progress, client_config=security.client_config(), stop=stop)
    else:
        sent = publish(articles, bootstrap_servers=bootstrap, topic=args.topic,
                       partitions=args.partitions, order=args.order, progress=progress,
                       client_config=security.client_config())
    elapsed = time.monotonic() - started
    print(file=sys.stderr)
    extra = f"; skipped {skipped}" if skipped else ""
    rate = f" ({sent / elapsed:.0f} articles/s)" if elapsed > 0 else ""
    if newest is not None:
        import datetime as dt
        extra = (f"; publication times up to "
                 f"{dt.datetime.fromtimestamp(newest / 1000, dt.timezone.utc):%Y-%m-%d %H:%M:%S} "
                 f"UTC{extra}")
    print(f"sent {sent} articles to {args.topic} at {bootstrap} in {elapsed:.1f}s{rate}{extra}")
    return 0


def _run(argv):
    from pipeline.run import run
    return run(argv)


def _inspect(argv):
    parser = argparse.ArgumentParser(prog="entitystream inspect",
                                     description="Print the Avro aggregates in DIR.")
    parser.add_argument("dir", metavar="DIR")
    parser.add_argument("--table", action="store_true", help="top entities per window")
    parser.add_argument("--final", action="store_true", help="only each window's latest pane")
    parser.add_argument("--top", type=int, default=5, help="rows per window in --table")
    args = parser.parse_args(argv)
    from pipeline import inspect_output
    rows = inspect_output.load(args.dir)
    if not rows:
        print(f"no Avro aggregates under {args.dir}", file=sys.stderr)
        return 1
    if args.table:
        print(inspect_output.table(rows, top=args.top))
    else:
        print(inspect_output.to_json_lines(inspect_output.latest_panes(rows) if args.final else rows))
    return 0


def _report(argv):
    parser = argparse.ArgumentParser(
        prog="entitystream report",
        description="Render a PNG chart of the tracked entities' mentions and the tracked "
                    "tuple over time, from the Avro aggregates in DIR.")
    parser.add_argument("dir", metavar="DIR")
    parser.add_argument("--output", default=None,
                        help="PNG file to write (default DIR/report.png)")
    parser.add_argument("--entity", action="append", dest="entities", metavar="ID",
                        help="entity id to plot (repeatable; default the tracked entities)")
    args = parser.parse_args(argv)
    from pipeline import report
    path = report.render(args.dir, output=args.output, entities=args.entities)
    print(f"wrote {path}")
    return 0


def _demo(argv):
    parser = argparse.ArgumentParser(prog="entitystream demo",
                                     description="Seeds -> local broker -> streaming pipeline "
                                                 "on Prism -> Avro, and a summary.")
    parser.add_argument("--output", default="out/demo", help="default %(default)s")
    parser.add_argument("--window-seconds", type=int, default=3600)
    parser.add_argument("--metrics-port", type=int, default=9477, help="0 for none")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--keep-running", action="store_true",
                        help="keep the pipeline and /metrics up after the summary")
    parser.add_argument("--speed", type=float, default=None, metavar="X",
                        help="publish the seeds while the pipeline runs, X seconds of "
                             "publication time per second (the seeds span 163 days: "
                             "--speed 1000000 takes 14 s), and print each pane as it comes")
    args = parser.parse_args(argv)
    from pipeline.demo import run_demo
    return run_demo(output_dir=args.output, window_seconds=args.window_seconds,
                    metrics_port=args.metrics_port, timeout_s=args.timeout,
                    keep_running=args.keep_running, speed=args.speed)


def _extract(argv):
    from pipeline.extract import main as extract_main
    return extract_main(argv)


def _eval_identity(argv):
    from pipeline.identity_eval import main as identity_main
    return identity_main(argv)


def _feeds(argv):
    from connectors.feeds import main as feeds_main
    return feeds_main(argv)


def _dashboard(argv):
    from pipeline.dashboard import main as dashboard_main
    return dashboard_main(argv)


def _eval_ner(argv):
    from pipeline.ner_eval import main as eval_main
    return eval_main(argv)


COMMANDS = {
    "broker": (_broker, "start | stop | status of the local Kafka broker"),
    "replay": (_replay, "publish seed files or a corpus to a topic"),
    "run": (_run, "run the pipeline"),
    "inspect": (_inspect, "print the Avro aggregates"),
    "report": (_report, "render a PNG chart of the tracked entities and tuple"),
    "demo": (_demo, "the whole path on the seeds, with a summary"),
    "extract": (_extract, "print the mentions the pipeline counts in files, as JSON lines"),
    "eval-ner": (_eval_ner, "score entity extraction on CoNLL-2003 (bare model vs project)"),
    "eval-identity": (_eval_identity, "score entity ids on hand-linked news (AIDA CoNLL-YAGO)"),
    "feeds": (_feeds, "follow RSS/Atom feeds: publish each new entry to a topic"),
    "dashboard": (_dashboard, "write the Grafana dashboard for your tracked entities and tuples"),
}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = ["usage: entitystream COMMAND [--help]", "", "commands:"]
        lines += [f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("\n".join(lines), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        return COMMANDS[argv[0]][0](argv[1:])
    except (ValueError, RuntimeError, TimeoutError) as exc:
        print(f"entitystream {argv[0]}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
