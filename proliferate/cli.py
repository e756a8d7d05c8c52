"""The `proliferate` command: serve, migrate, and the admin commands (users, projects, keys,
tokens). Every command reads the same settings as serve (PROLIFERATE_* or the flags)."""

import argparse
import getpass
import logging
import os
import sys

from proliferate import __version__
from proliferate import auth
from proliferate import backup
from proliferate import check
from proliferate import db
from proliferate import orgs
from proliferate import times
from proliferate.config import SETTINGS
from proliferate.config import Config
from proliferate.ingest import scrub
from proliferate.ingest.admission import clean_patterns
from proliferate.models import ApiToken
from proliferate.models import Membership
from proliferate.models import Organization
from proliferate.models import Project
from proliferate.models import ProjectKey
from proliferate.models import Session
from proliferate.models import User
from proliferate.notifications import channel_check
from proliferate.sourcemaps import upload_cli


class CommandError(Exception):
    """A message for the user; exit status 1."""



def add_settings(parser):
    for name, kind, _default, help_text in SETTINGS:
        parser.add_argument('--' + name.replace('_', '-'), dest=name, default=None,
                            type=kind, help=f'{help_text} [PROLIFERATE_{name.upper()}]')


def build_parser():
    parser = argparse.ArgumentParser(prog='proliferate', description='Proliferate error tracker')
    parser.add_argument('--version', action='version', version=__version__)
    sub = parser.add_subparsers(dest='command', required=True, metavar='command')

    serve = sub.add_parser('serve', help='run the server')
    add_settings(serve)
    migrate = sub.add_parser('migrate', help='create or upgrade the database schema')
    add_settings(migrate)

    user = sub.add_parser('user', help='dashboard users').add_subparsers(dest='action', required=True)
    p = user.add_parser('create', help='create a user')
    p.add_argument('email')
    p.add_argument('--password')
    p.add_argument('--admin', action='store_true', help='owner of the organization, site admin')
    p.add_argument('--org', help='organization slug (default: the first one)')
    add_settings(p)
    p = user.add_parser('password', help='set a user\'s password (a forgotten one) and end '
                                         'their sessions')
    p.add_argument('email')
    p.add_argument('--password', help='the new password (default: read from standard input)')
    add_settings(p)

    project = sub.add_parser('project', help='projects').add_subparsers(dest='action', required=True)
    p = project.add_parser('create', help='create a project; prints its ingest key last')
    p.add_argument('name')
    p.add_argument('--org', help='organization slug or name (created if missing; default: the first)')
    add_settings(p)
    p = project.add_parser('list', help='list projects')
    add_settings(p)
    p = project.add_parser('dsn', help='print the project\'s DSN for Sentry SDKs (last line)')
    p.add_argument('project', help='project id or slug')
    add_settings(p)
    p = project.add_parser('set', help='change a project\'s scrubbing, retention and rate limit')
    p.add_argument('project', help='project id or slug')
    p.add_argument('--scrub', choices=('on', 'off'), help='scrub secrets before storing (default on)')
    p.add_argument('--scrub-keys', metavar='KEYS',
                   help='comma-separated keys scrubbed besides the built-in ones ("" clears them)')
    p.add_argument('--max-events', metavar='N', type=int,
                   help='keep at most N events of the project (0: no maximum)')
    p.add_argument('--rate-limit', metavar='N', type=int,
                   help='events per minute (0: no limit, -1: the server default)')
    p.add_argument('--in-app', metavar='PATTERNS',
                   help='comma-separated path parts that make a frame application code, for '
                        'grouping ("" clears them)')
    p.add_argument('--library', metavar='PATTERNS',
                   help='comma-separated path parts that make a frame library code ("" clears '
                        'them)')
    add_settings(p)

    key = sub.add_parser('key', help='ingest keys (pk_...)').add_subparsers(dest='action', required=True)
    p = key.add_parser('create', help='create an ingest key; prints it last')
    p.add_argument('project', help='project id or slug')
    add_settings(p)
    p = key.add_parser('revoke', help='revoke an ingest key')
    p.add_argument('key')
    add_settings(p)
    p = key.add_parser('list', help='list the keys of a project')
    p.add_argument('project')
    add_settings(p)

    token = sub.add_parser('token', help='read-API and upload tokens').add_subparsers(
        dest='action', required=True)
    p = token.add_parser('create', help='create a token for a user; prints it last (shown once)')
    p.add_argument('email')
    p.add_argument('--org', help='organization slug (default: the user\'s first)')
    p.add_argument('--upload', metavar='PROJECT',
                   help='an upload token for releases and source maps of PROJECT, not a read token')
    p.add_argument('--name', default=None,
                   help='what the token is for, shown on the tokens pages '
                        '(default: "created on the command line YYYY-MM-DD")')
    add_settings(p)
    p = token.add_parser('revoke', help='revoke a token (by its value or its shown prefix)')
    p.add_argument('token')
    add_settings(p)

    p = sub.add_parser('check', help='report what is wrong or risky with the settings, the '
                                     'database, the base URL, SMTP, the disk and the backups')
    p.add_argument('--strict', action='store_true', help='exit status 1 on warnings too')
    add_settings(p)
    p = sub.add_parser('backup', help='copy the live SQLite database to PATH, verified')
    p.add_argument('path', help='a file, or a directory for a dated file')
    add_settings(p)
    p = sub.add_parser('restore', help='put a backup back (the server must be stopped)')
    p.add_argument('path', help='a file made by `proliferate backup`')
    add_settings(p)
    notify_parser = sub.add_parser('notify', help='notifications')
    p = notify_parser.add_subparsers(dest='action', required=True).add_parser(
        'test', help='send a test message to every configured channel and report each result')
    p.add_argument('--org', help='organization slug (default: the first)')
    p.add_argument('--to', help='send the test email to this address instead of the members')
    add_settings(p)
    sourcemaps = sub.add_parser('sourcemaps', help='source maps (a client of a running server)')
    sourcemaps = sourcemaps.add_subparsers(dest='action', required=True)
    p = sourcemaps.add_parser('upload', help='upload the maps of a build directory for a release')
    p.add_argument('directory', metavar='DIR', help='build output: each minified .js with its map')
    p.add_argument('--release', required=True, help='the release version the events will send')
    p.add_argument('--url-prefix', default=None,
                   help="where DIR is served, e.g. '~/static/js' (any host) or https://cdn/x (default ~)")
    p.add_argument('--server', default=None, help='server URL [PROLIFERATE_SERVER_URL]')
    p.add_argument('--token', default=None, help='upload token pru_... [PROLIFERATE_UPLOAD_TOKEN]')
    p.add_argument('--project', default=None,
                   help="the token's project (id or slug); the upload fails if it is another one")
    return parser


def settings_from(args):
    overrides = {name: getattr(args, name, None) for name, *_ in SETTINGS}
    return Config.from_env(os.environ, **overrides)


def open_db(config, *, create=False):
    """Open and migrate the configured database. Only `migrate` may create a SQLite file (serve
    and restore never come here): an admin command run in another directory than the server
    would otherwise make an empty database and print keys the running server has never seen."""
    path = backup.sqlite_path(config.database_url) if config.database_url.startswith('sqlite:///') else None
    if path is not None and not create and not path.exists():
        raise CommandError(f'no database at {path.resolve()}: run this in the directory where '
                           '`proliferate serve` runs, or set PROLIFERATE_DATABASE_URL')
    db.open_database(config.database_url, synchronous=config.sqlite_synchronous)
    db.migrate()


def find_org(slug=None, *, create=False):
    if slug is None:
        org = Organization.select().order_by(Organization.id).first()
        if org is None and create:
            org = orgs.create_organization('Default')
        if org is None:
            raise CommandError('no organization yet: create a project or user first')
        return org
    org = Organization.get_or_none((Organization.slug == slug) | (Organization.name == slug))
    if org is None:
        if not create:
            raise CommandError(f'no organization {slug!r}')
        org = orgs.create_organization(slug)
    return org


def find_project(ref):
    query = Project.select()
    project = (query.where(Project.id == int(ref)).first() if ref.isdigit()
               else query.where((Project.slug == ref) | (Project.name == ref)).first())
    if project is None:
        raise CommandError(f'no project {ref!r}')
    return project



def cmd_project_create(args):
    org = find_org(args.org, create=True)
    project = orgs.create_project(org, args.name)
    key = project.keys.get()
    dsn = project_dsn(args, project, key)
    if dsn:
        print(f'DSN for Sentry SDKs: {dsn}')
    print(f'Created project {project.name!r} (id {project.id}, org {org.slug}). Ingest key:')
    print(key.key)


def project_dsn(args, project, key):
    """The DSN of a key, or None (with why on stderr) when PROLIFERATE_BASE_URL is not set: a
    DSN names this server's public address, which only that setting tells the command line."""
    base = settings_from(args).base_url
    if not base:
        print('proliferate: set PROLIFERATE_BASE_URL (this server\'s public URL, e.g. '
              'https://errors.example.com) to print a DSN', file=sys.stderr)
        return None
    return orgs.dsn(base, key.key, project.id)


def cmd_project_dsn(args):
    project = find_project(args.project)
    key = orgs.live_key(project.id)
    if key is None:
        raise CommandError(f'project {project.slug!r} has no live ingest key: '
                           f'proliferate key create {project.slug}')
    dsn = project_dsn(args, project, key)
    if dsn is None:
        raise CommandError('no DSN without a base URL')
    print(f'DSN of project {project.name!r} (ingest key {key.key}):')
    print(dsn)


def cmd_project_list(args):
    for project in Project.select().order_by(Project.id):
        print(f'{project.id}\t{project.slug}\t{project.name}\t{project.organization.slug}')


def cmd_project_set(args):
    project = find_project(args.project)
    changes = {}
    if args.scrub is not None:
        changes[Project.scrub_enabled] = args.scrub == 'on'
    if args.scrub_keys is not None:
        changes[Project.scrub_extra_keys] = ','.join(scrub.parse_keys(args.scrub_keys))
    if args.max_events is not None:
        changes[Project.max_events] = args.max_events if args.max_events > 0 else None
    if args.rate_limit is not None:
        changes[Project.rate_limit_per_minute] = args.rate_limit if args.rate_limit >= 0 else None
    if args.in_app is not None:
        changes[Project.in_app_patterns] = clean_patterns(args.in_app)
    if args.library is not None:
        changes[Project.library_patterns] = clean_patterns(args.library)
    if changes:
        Project.update(changes).where(Project.id == project.id).execute()
    project = Project.get_by_id(project.id)
    limit = project.rate_limit_per_minute
    print(f'{project.slug}: scrub {"on" if project.scrub_enabled is not False else "off"}, '
          f'scrub keys {project.scrub_extra_keys or "-"}, max events {project.max_events or "-"}, '
          f'rate limit {"default" if limit is None else limit}, '
          f'in-app {project.in_app_patterns or "-"}, library {project.library_patterns or "-"}'
          ' (a running server sees it within key_cache_seconds)')


def cmd_backup(args, config):
    figures = backup.backup(config.database_url, args.path)
    print(f'Backed up to {figures["path"]}: {figures["bytes"]} bytes, integrity_check '
          f'{figures["integrity"]}, {figures["seconds"]} s')


def cmd_restore(args, config):
    figures = backup.restore(config.database_url, args.path)
    if figures['saved_previous']:
        print(f'The database it replaced is saved as {figures["saved_previous"]}')
    print(f'Restored {figures["path"]} from {figures["from"]}: integrity_check {figures["integrity"]}')


def cmd_key_create(args):
    project = find_project(args.project)
    key = auth.create_ingest_key(project)
    print(f'Created an ingest key for project {project.name!r}:')
    print(key.key)


def cmd_key_revoke(args):
    updated = (ProjectKey.update(revoked_at=times.utcnow())
               .where(ProjectKey.key == args.key, ProjectKey.revoked_at.is_null()).execute())
    if not updated:
        raise CommandError(f'no live key {args.key!r}')
    print(f'Revoked {args.key}')


def cmd_key_list(args):
    project = find_project(args.project)
    for key in project.keys.order_by(ProjectKey.id):
        state = f'revoked {key.revoked_at:%Y-%m-%d}' if key.revoked_at else 'active'
        print(f'{key.key}\t{state}')


def cmd_user_create(args):
    email = auth.normalize_email(args.email)
    try:
        orgs.check_email(email)
        if args.password is not None:
            orgs.check_password(args.password)
    except orgs.Refused as error:
        raise CommandError(str(error)) from None
    if User.select().where(User.email == email).exists():
        raise CommandError(f'user {email} exists already')
    org = find_org(args.org, create=True)
    user = orgs.create_user(email, args.password, is_admin=args.admin)
    orgs.add_member(org, user, 'owner' if args.admin else 'member')
    print(f'Created user {email} in organization {org.slug}')


def cmd_user_password(args):
    user = User.get_or_none(User.email == args.email.strip().lower())
    if user is None:
        raise CommandError(f'no user {args.email!r}')
    password = args.password
    if password is None:
        password = (getpass.getpass('New password: ') if sys.stdin.isatty()
                    else sys.stdin.readline().rstrip('\n'))
    try:
        orgs.check_password(password)
    except orgs.Refused as error:
        raise CommandError(str(error)) from None
    User.update(password_hash=auth.hash_password(password)).where(User.id == user.id).execute()
    ended = Session.delete().where(Session.user == user.id).execute()
    print(f'Password of {user.email} changed; {ended} session(s) ended')


def cmd_token_create(args):
    user = User.get_or_none(User.email == args.email.strip().lower())
    if user is None:
        raise CommandError(f'no user {args.email!r}: create it with `proliferate user create`')
    if args.org:
        org = find_org(args.org)
    else:
        membership = user.memberships.order_by(Membership.id).first()
        if membership is None:
            raise CommandError(f'{user.email} is in no organization')
        org = membership.organization
    if not Membership.select().where(Membership.user == user, Membership.organization == org).exists():
        raise CommandError(f'{user.email} is not a member of {org.slug}')
    name = (args.name or '').strip()[:100] or token_name(times.utcnow())
    if args.upload:
        project = find_project(args.upload)
        if project.organization_id != org.id:
            raise CommandError(f'project {args.upload!r} is not in organization {org.slug}')
        token, _row = auth.create_token(user, org, kind='upload', project=project, name=name)
        print(f'Upload token {name!r} for project {project.name!r} (shown once):')
    else:
        token, _row = auth.create_token(user, org, kind='read', name=name)
        print(f'Read-API token {name!r} for {user.email} in {org.slug} (shown once):')
    print(token)


def token_name(now):
    """The name of a token made without --name: the tokens pages list it by name."""
    return f'created on the command line {now:%Y-%m-%d}'


def cmd_token_revoke(args):
    query = ApiToken.update(revoked_at=times.utcnow()).where(ApiToken.revoked_at.is_null())
    updated = query.where((ApiToken.token_hash == auth.hash_token(args.token))
                          | (ApiToken.prefix == args.token)).execute()
    if not updated:
        raise CommandError('no live token matches')
    print(f'Revoked {updated} token(s)')


def cmd_sourcemaps_upload(args, config):
    """A client command: it talks to a server over HTTP and opens no database."""
    try:
        failures = upload_cli.upload(
            args.directory, release=args.release, url_prefix=args.url_prefix,
            server=args.server or config.server_url, token=args.token or config.upload_token,
            project=args.project)
    except upload_cli.UploadError as error:
        print(f'proliferate: {error}', file=sys.stderr)
        return 1
    return 1 if failures else 0


def cmd_check(args, config):
    """One line per check; exit status 1 when one failed (or warned, with --strict). It only
    reads: a missing SQLite file is not created and no migration runs."""
    findings = check.run_checks(config)
    width = max(len(finding.subject) for finding in findings)
    for finding in findings:
        print(f'{finding.level:<4}  {finding.subject:<{width}}  {finding.message}')
    failed = [f for f in findings if f.level == check.FAIL]
    warned = [f for f in findings if f.level == check.WARN]
    print(f'{len(failed)} failed, {len(warned)} warning(s), '
          f'{len(findings) - len(failed) - len(warned)} ok')
    return 1 if failed or (args.strict and warned) else 0


def cmd_notify_test(args, config):
    """Sends outside any transaction: a slow SMTP server must not hold the write lock."""
    try:
        open_db(config)
        with db.database.connection_context():
            org = find_org(args.org)
    except CommandError as error:
        print(f'proliferate: {error}', file=sys.stderr)
        return 1
    report = channel_check.send_test(config, org, times.utcnow(), to=args.to)
    for channel, target, error in report:
        label = f'{channel} {target}'.strip()
        print(f'{label}: sent' if error is None else f'{label}: FAILED: {error}')
    if not report:
        print('No channel is configured: set PROLIFERATE_SMTP_HOST or add a webhook.')
    return 0 if report and all(error is None for _c, _t, error in report) else 1


COMMANDS = {
    ('project', 'create'): cmd_project_create,
    ('project', 'list'): cmd_project_list,
    ('project', 'dsn'): cmd_project_dsn,
    ('project', 'set'): cmd_project_set,
    ('key', 'create'): cmd_key_create,
    ('key', 'revoke'): cmd_key_revoke,
    ('key', 'list'): cmd_key_list,
    ('user', 'create'): cmd_user_create,
    ('user', 'password'): cmd_user_password,
    ('token', 'create'): cmd_token_create,
    ('token', 'revoke'): cmd_token_revoke,
}

FILE_COMMANDS = {'backup': cmd_backup, 'restore': cmd_restore}

# The commands that may create a new SQLite file; every other one needs the server's database.
CREATES_DATABASE = {'serve', 'migrate', 'restore'}


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    args = build_parser().parse_args(argv)
    try:
        config = settings_from(args)
    except ValueError as error:
        print(f'proliferate: {error}', file=sys.stderr)
        return 2
    if args.command == 'serve':
        from proliferate.server import serve
        return serve(config)
    if args.command == 'notify':
        return cmd_notify_test(args, config)
    if args.command == 'check':
        return cmd_check(args, config)
    if args.command == 'sourcemaps':
        return cmd_sourcemaps_upload(args, config)
    if args.command in FILE_COMMANDS:
        # Neither migrates nor opens a transaction: backup runs beside a live server, restore
        # must find the database closed.
        try:
            FILE_COMMANDS[args.command](args, config)
        except backup.BackupError as error:
            print(f'proliferate: {error}', file=sys.stderr)
            return 1
        return 0
    if args.command == 'migrate':
        # As serve does: migrating another application's database would change it.
        usable, message = db.inspect_database(config.database_url)
        if not usable:
            print(f'proliferate: not migrating: {message}', file=sys.stderr)
            return 3
    try:
        open_db(config, create=args.command in CREATES_DATABASE)
        if args.command == 'migrate':
            print('Schema up to date:', ', '.join(db.schema_version()))
            return 0
        with db.database.connection_context():
            with db.database.atomic():
                COMMANDS[args.command, args.action](args)
    except CommandError as error:
        print(f'proliferate: {error}', file=sys.stderr)
        return 1
    return 0
