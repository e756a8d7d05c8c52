"""Notifications: organization settings, member preferences, webhooks, the delivery log,
cooldowns and the trigger detector's cursor (frozen models, the style of 0001)."""
import datetime

from peewee import *  # noqa: F403 (frozen copy, the style of 0001)


def up(migrator, db):
    class Organization(Model):
        class Meta:
            database = db
            table_name = 'organization'

    class Membership(Model):
        class Meta:
            database = db
            table_name = 'membership'

    class Issue(Model):
        class Meta:
            database = db
            table_name = 'issue'

    class NotificationSettings(Model):
        organization = ForeignKeyField(Organization, unique=True, backref='+', on_delete='CASCADE')
        delivery_mode = CharField(default='immediate')
        digest_hour = IntegerField(default=9)
        digest_weekday = IntegerField(default=0)
        trigger_new_issue = BooleanField(default=True)
        trigger_regression = BooleanField(default=True)
        trigger_spike = BooleanField(default=True)
        spike_events = IntegerField(default=100)
        spike_minutes = IntegerField(default=60)
        trigger_accounts = BooleanField(default=False)
        accounts_threshold = IntegerField(default=10)
        min_level = CharField(default='warning')
        environments = TextField(default='')
        cooldown_minutes = IntegerField(default=60)
        hourly_cap = IntegerField(default=20)
        last_digest_at = DateTimeField(null=True)
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'notification_settings'
    db.create_tables([NotificationSettings])

    class NotificationPreference(Model):
        membership = ForeignKeyField(Membership, unique=True, backref='+', on_delete='CASCADE')
        email = CharField(default='on')
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'notification_preference'
    db.create_tables([NotificationPreference])

    class Webhook(Model):
        organization = ForeignKeyField(Organization, backref='+', on_delete='CASCADE')
        name = CharField(default='')
        url = TextField()
        kind = CharField(default='generic')
        secret = CharField(default='')
        is_active = BooleanField(default=True)
        created_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'webhook'
    db.create_tables([Webhook])

    class Delivery(Model):
        organization = ForeignKeyField(Organization, backref='+', on_delete='CASCADE', index=False)
        channel = CharField()
        target = CharField()
        webhook = ForeignKeyField(Webhook, null=True, backref='+', on_delete='SET NULL')
        kind = CharField()
        trigger = CharField(null=True)
        issue = ForeignKeyField(Issue, null=True, backref='+', on_delete='SET NULL')
        subject = CharField(default='')
        payload = TextField(default='{}')
        status = CharField(default='pending')
        attempts = IntegerField(default=0)
        next_attempt_at = DateTimeField(null=True)
        last_error = TextField(default='')
        created_at = DateTimeField()
        sent_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'delivery'
            indexes = ((('status', 'next_attempt_at'), False),
                       (('organization', 'created_at'), False),
                       (('target', 'created_at'), False))
    db.create_tables([Delivery])

    class NotificationCooldown(Model):
        issue = ForeignKeyField(Issue, backref='+', on_delete='CASCADE', index=False)
        trigger = CharField()
        last_sent_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'notification_cooldown'
            indexes = ((('issue', 'trigger'), True),)
    db.create_tables([NotificationCooldown])

    class NotificationCursor(Model):
        name = CharField(unique=True)
        event_id = BigIntegerField(default=0)
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'notification_cursor'
    db.create_tables([NotificationCursor])
    # The detector starts after the events that exist now: an upgrade must not read years of
    # history as one spike.
    start = db.execute_sql('SELECT COALESCE(MAX(id), 0) FROM event').fetchone()[0]
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    NotificationCursor.insert(name='triggers', event_id=start, updated_at=now).execute()


def down(migrator, db):
    for table in ('notification_cursor', 'notification_cooldown', 'delivery', 'webhook',
                  'notification_preference', 'notification_settings'):
        migrator.migrate(migrator.drop_table(table))
