"""Settings: one frozen Config, the SETTINGS table that documents it, and from_env().

Config.from_env() is the only reader of PROLIFERATE_* variables; the CLI maps the same names to flags.
"""

import dataclasses
import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _find_dir(name):
    """templates/ and static/ sit beside the package in a checkout; a wheel installs them under
    <prefix>/share/proliferate (setup.cfg data_files); the single-file build (.ci/build-binary)
    carries them in the directory it unpacks itself to, sys._MEIPASS."""
    if getattr(sys, 'frozen', False):
        return Path(sys._MEIPASS) / name
    here = ROOT / name
    if here.is_dir():
        return here
    return Path(sys.prefix) / 'share' / 'proliferate' / name


def boolean(raw):
    """A flag from the environment or the command line: bool('0') is True, so parse it."""
    value = str(raw).strip().lower()
    if value in ('1', 'true', 'yes', 'on'):
        return True
    if value in ('0', 'false', 'no', 'off'):
        return False
    raise ValueError(f'expected 1/0, true/false or yes/no, got {raw!r}')


# (name, type, default, help). The README documents every row (tests/test_docs.py checks it).
SETTINGS = (
    ('host', str, '127.0.0.1', 'Address to listen on.'),
    ('port', int, 8000, 'Port to listen on.'),
    ('database_url', str, 'sqlite:///proliferate.db',
     'Peewee database URL: sqlite:///relative.db, sqlite:////absolute/path.db or postgresql://...'),
    ('base_url', str, '', 'Public URL of this server, used in links in emails and snippets.'),
    ('threads', int, 16,
     'Waitress worker threads (each waits for its events to be committed). 16 serve 1,000 '
     'client connections without an error; more did not store measurably more on 2 cores.'),
    ('connection_limit', int, 4000,
     'Waitress: most connections open at once; past it new connections wait in the listen '
     'backlog (1,024) until one closes. 1,000 slow or silent clients leave others unhindered '
     'at 4,000 (at 1,000 they took every slot). The open-file limit is raised to match.'),
    ('channel_timeout', int, 30,
     'Waitress: seconds after which a connection that sent nothing is closed (checked every '
     '30 s); a client sending a byte at a time is not idle: see connection_limit.'),
    ('trusted_proxy', str, '',
     'Address of a reverse proxy whose X-Forwarded-* headers are believed (the client address '
     'for login throttling, https for Secure cookies); empty: none.'),
    ('trusted_proxy_headers', str, 'x-forwarded-for x-forwarded-proto x-forwarded-host',
     'The X-Forwarded-* headers taken from the trusted proxy.'),
    ('sqlite_synchronous', str, 'FULL',
     'SQLite synchronous pragma: FULL survives power loss (group commit makes it cheap), '
     'NORMAL only crashes.'),
    ('writer_queue_size', int, 20000, 'Events that may wait for the writer; beyond it ingest answers 429.'),
    ('writer_batch_size', int, 1000, 'Most events the writer commits in one transaction.'),
    ('max_event_bytes', int, 1024 * 1024, 'Largest body of POST /api/v1/errors (after gunzip).'),
    ('max_batch_bytes', int, 10 * 1024 * 1024, 'Largest body of POST /api/v1/errors/batch (after gunzip).'),
    ('max_batch_events', int, 100, 'Most events in one batch request.'),
    ('rate_limit_per_minute', int, 0,
     'Default events per minute per project (0 = no limit); a project may set its own.'),
    ('key_cache_seconds', float, 2.0,
     'How long a looked-up ingest key is trusted before it is read again (revocation delay).'),
    ('templates_dir', Path, None, 'Directory of the Jinja2 templates (default: the bundled ones).'),
    ('static_dir', Path, None, 'Directory of the static files (default: the bundled ones).'),
    ('event_retention_days', int, 90,
     'Events older than this many days are deleted (issues and their counts stay); 0 keeps them.'),
    ('backup_dir', str, '',
     'Directory of the daily SQLite backup (03:17 UTC); empty: no scheduled backup.'),
    ('backup_keep', int, 7, 'How many daily backups to keep in backup_dir.'),
    ('smtp_host', str, '', 'SMTP server for notification email; empty: no email is sent.'),
    ('smtp_port', int, 25, 'SMTP port (usually 587 with STARTTLS, 465 with SSL).'),
    ('smtp_username', str, '', 'SMTP login user; empty: no login.'),
    ('smtp_password', str, '', 'SMTP login password.'),
    ('smtp_starttls', boolean, False, 'Upgrade the SMTP connection with STARTTLS (1/0, true/false, yes/no).'),
    ('smtp_ssl', boolean, False, 'Connect to SMTP over TLS from the start (SMTPS, port 465).'),
    ('smtp_from', str, 'proliferate@localhost', 'Sender address of notification email.'),
    # Source maps.
    ('sourcemap_retention_days', int, 90,
     'Maps of releases older than this many days are deleted daily (the newest releases keep '
     'theirs); 0 keeps all.'),
    ('sourcemap_keep_releases', int, 10,
     'The source-map clean-up always keeps the maps of this many newest releases of each project.'),
    ('sourcemap_cache_mb', int, 256,
     'Memory the writer may hold in parsed source maps (a parsed map costs about 3x its JSON).'),
    ('server_url', str, '', 'Server that `proliferate sourcemaps upload` sends to (its --server).'),
    ('upload_token', str, '',
     'Upload token (pru_...) that `proliferate sourcemaps upload` sends (its --token).'),
    # Several processes on one database.
    ('leader_retry_seconds', float, 15.0,
     'How often a process that does not run the scheduled jobs tries to take over (and the one '
     'that does checks its lock).'),
    # Operations.
    ('log_level', str, 'INFO',
     'Log level: DEBUG, INFO, WARNING or ERROR (DEBUG also shows the scheduler\'s and Waitress\'s '
     'routine lines).'),
    ('log_format', str, 'text',
     'text (one readable line per record) or json (one JSON object per line: time, level, logger, '
     'message, and method, path, status, duration_ms, client on access lines).'),
    ('metrics_allow', str, '',
     'Client addresses or networks (comma-separated, e.g. 127.0.0.1,10.0.0.0/8) that may read '
     '/metrics without a token; empty: only with a site admin\'s read token.'),
)


@dataclass(frozen=True)
class Config:
    host: str = '127.0.0.1'
    port: int = 8000
    database_url: str = 'sqlite:///proliferate.db'
    base_url: str = ''
    threads: int = 16
    connection_limit: int = 4000
    channel_timeout: int = 30
    trusted_proxy: str = ''
    trusted_proxy_headers: str = 'x-forwarded-for x-forwarded-proto x-forwarded-host'
    sqlite_synchronous: str = 'FULL'
    writer_queue_size: int = 20000
    writer_batch_size: int = 1000
    max_event_bytes: int = 1024 * 1024
    max_batch_bytes: int = 10 * 1024 * 1024
    max_batch_events: int = 100
    rate_limit_per_minute: int = 0
    key_cache_seconds: float = 2.0
    templates_dir: Path = dataclasses.field(default_factory=lambda: _find_dir('templates'))
    static_dir: Path = dataclasses.field(default_factory=lambda: _find_dir('static'))
    event_retention_days: int = 90
    backup_dir: str = ''
    backup_keep: int = 7
    smtp_host: str = ''
    smtp_port: int = 25
    smtp_username: str = ''
    smtp_password: str = ''
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_from: str = 'proliferate@localhost'
    # Source maps.
    sourcemap_retention_days: int = 90
    sourcemap_keep_releases: int = 10
    sourcemap_cache_mb: int = 256
    server_url: str = ''
    upload_token: str = ''
    # Several processes on one database.
    leader_retry_seconds: float = 15.0
    # Operations.
    log_level: str = 'INFO'
    log_format: str = 'text'
    metrics_allow: str = ''

    def __post_init__(self):
        validate(self)

    @classmethod
    def from_env(cls, environ, **overrides):
        """Settings from PROLIFERATE_<NAME> variables; overrides (CLI flags) win."""
        values = {}
        for name, kind, _default, _help in SETTINGS:
            raw = environ.get('PROLIFERATE_' + name.upper())
            if raw is not None and raw != '':
                values[name] = parse_value(name, kind, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def parse_value(name, kind, raw):
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f'PROLIFERATE_{name.upper()}: expected {kind.__name__}, got {raw!r}') from None


def validate(config):
    url = config.database_url
    if url.startswith('sqlite:'):
        # db_url turns 'sqlite://' + '' or ':memory:' into an in-memory database: every
        # connection would see its own empty database and acknowledged events would vanish.
        path = url[len('sqlite://'):] if url.startswith('sqlite://') else ''
        if path in ('', '/', '/:memory:') or ':memory:' in url:
            raise ValueError(
                f'database_url {url!r} is an in-memory database; use sqlite:///file.db '
                '(relative) or sqlite:////absolute/file.db')
    elif not url.startswith(('postgres://', 'postgresql://', 'postgresext://', 'postgresqlext://')):
        raise ValueError(f'database_url {url!r}: only sqlite:// and postgresql:// are supported')
    if config.sqlite_synchronous.upper() not in ('OFF', 'NORMAL', 'FULL', 'EXTRA'):
        raise ValueError('sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA')
    if not 1 <= config.max_batch_events <= 10000:
        raise ValueError('max_batch_events must be between 1 and 10000')
    if config.event_retention_days < 0 or config.backup_keep < 1:
        raise ValueError('event_retention_days must be >= 0 and backup_keep >= 1')
    if config.leader_retry_seconds <= 0:
        raise ValueError('leader_retry_seconds must be above 0')
    if config.log_level.upper() not in LOG_LEVELS:
        raise ValueError(f'log_level must be one of {", ".join(LOG_LEVELS)}, got {config.log_level!r}')
    if config.log_format not in ('text', 'json'):
        raise ValueError(f'log_format must be text or json, got {config.log_format!r}')
    try:
        metrics_networks(config.metrics_allow)
    except ValueError as error:
        raise ValueError(f'metrics_allow: {error}') from None
    for name in ('threads', 'writer_queue_size', 'writer_batch_size', 'connection_limit',
                 'channel_timeout'):
        if getattr(config, name) < 1:
            raise ValueError(f'{name} must be at least 1')


LOG_LEVELS = ('DEBUG', 'INFO', 'WARNING', 'ERROR')


def metrics_networks(raw):
    """The metrics_allow setting as ip_network objects (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in raw.split(',') if part.strip())


def settings_markdown():
    """The README's settings table (`python -m proliferate.config` prints it)."""
    rows = ['| variable | default | meaning |', '| --- | --- | --- |']
    for name, _kind, default, help_text in SETTINGS:
        shown = '(bundled)' if default is None else (f'`{default}`' if default != '' else '(empty)')
        rows.append(f'| `PROLIFERATE_{name.upper()}` | {shown} | {help_text} |')
    return '\n'.join(rows)


if __name__ == '__main__':
    print(settings_markdown())
