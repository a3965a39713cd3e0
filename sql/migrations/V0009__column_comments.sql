-- What every column analysts can read means: the data dictionary (docs/data-dictionary.md) is
-- generated from these comments, and a test fails when a column in core, marts or meta lacks one.

-- Bookkeeping columns, the same in every core table.
do $$
declare
    t record;
begin
    for t in
        select c.oid::regclass as rel, a.attname
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname = 'core' and c.relkind = 'r'
          and a.attname in ('load_id', 'updated_at', 'source_updated_at', 'closed_by_load_id')
    loop
        execute format('comment on column %s.%I is %L', t.rel, t.attname,
            case t.attname
                when 'load_id' then 'The batch that last wrote this row (meta.load_audit.load_id).'
                when 'updated_at' then 'When the warehouse last changed this row.'
                when 'source_updated_at' then
                    'When the source last changed the record (its own last-change time, or a '
                    'ledger''s or snapshot''s publication).'
                else 'The batch whose snapshot closed this version; null while current.'
            end);
    end loop;
end
$$;

comment on column core.dim_street.street_code is 'Street (街道) code, from the positions feed.';
comment on column core.dim_street.street_name is 'Official street name, e.g. 北京街道.';
comment on column core.dim_street.aliases is 'Other spellings departments use (北京街, 北京).';
comment on column core.dim_street.district_code is 'Six-digit code of the district (440104 Yuexiu).';

comment on column core.dim_community.community_code is 'Community (社区) code.';
comment on column core.dim_community.community_name is 'Official community name.';
comment on column core.dim_community.street_code is 'The street the community belongs to.';
comment on column core.dim_community.longitude is 'Centroid longitude, WGS 84 degrees.';
comment on column core.dim_community.latitude is 'Centroid latitude, WGS 84 degrees.';
comment on column core.dim_community.aliases is 'Other spellings departments use.';

comment on column core.dim_position.position_code is 'Service position code, from the register.';
comment on column core.dim_position.position_name is 'Name of the position (党群服务中心/站).';
comment on column core.dim_position.level is 'district, street, community or public_space.';
comment on column core.dim_position.street_code is 'Street of the position; null if none given.';
comment on column core.dim_position.community_code is 'Community of a community-level position.';
comment on column core.dim_position.address is 'Street address of the position (a place, not a person).';
comment on column core.dim_position.longitude is 'WGS 84 longitude (the feed sends GCJ-02).';
comment on column core.dim_position.latitude is 'WGS 84 latitude (the feed sends GCJ-02).';
comment on column core.dim_position.services is 'Service areas offered.';
comment on column core.dim_position.rooms is 'Rooms available.';
comment on column core.dim_position.integrated_platforms is 'Platforms integrated at the position.';
comment on column core.dim_position.opening_hours is 'Opening hours as published.';
comment on column core.dim_position.opened_on is 'Date the position opened.';
comment on column core.dim_position.status is 'open or closed.';

comment on column core.fact_position_day.position_code is 'The position.';
comment on column core.fact_position_day.visit_date is 'Local date (Asia/Shanghai) of the tally.';
comment on column core.fact_position_day.visitors is 'Visitors that day.';
comment on column core.fact_position_day.activities_held is 'Activities held that day.';
comment on column core.fact_position_day.participants is 'Participants in those activities.';

comment on column core.dim_person.gender is 'M or F, from the ID number.';
comment on column core.dim_person.birth_year is 'Birth year only; aged 60+ in year Y means birth_year <= Y - 60.';
comment on column core.dim_person.street_code is 'Street of the registered residence in this version.';
comment on column core.dim_person.community_code is 'Community of the registered residence in this version.';
comment on column core.dim_person.categories is
    'Target groups (高龄老人, 独居老人, 空巢老人, 低保对象, 特困人员, 残疾人, 优抚对象); may be empty.';
comment on column core.dim_person.valid_from is 'snapshot_date of the first snapshot showing this version.';
comment on column core.dim_person.valid_to is 'snapshot_date of the snapshot that ended it (exclusive); null while current.';
comment on column core.dim_person.is_current is 'True for the version valid now (valid_to is null).';

comment on column core.fact_service.service_id is 'Unique id: <source_feed>:<source_record_id>.';
comment on column core.fact_service.source_feed is 'health, elderly_care or volunteer.';
comment on column core.fact_service.source_record_id is 'The record''s id in its feed (ledger rows: month:street:version:sheet:row).';
comment on column core.fact_service.service_area is 'health, meals, day_care or volunteer_help.';
comment on column core.fact_service.service_type is
    'Kind of service: a health service type, a meal (lunch_delivered, ...), a day-care item, an activity category.';
comment on column core.fact_service.position_code is 'Position where it was delivered, when that is a registered position.';
comment on column core.fact_service.community_code is 'Community where it was delivered (health: the record''s; meals: the canteen''s), when known.';
comment on column core.fact_service.street_code is 'Street where it was delivered.';
comment on column core.fact_service.service_date is 'Local date of the service.';
comment on column core.fact_service.service_time is 'Time of the service when the feed gives one.';
comment on column core.fact_service.quantity is 'How much: 1 service or meal, or hours.';
comment on column core.fact_service.unit is 'service, meal or hour.';
comment on column core.fact_service.amount_yuan is 'Value in yuan where known (a meal: subsidy plus personal payment).';
comment on column core.fact_service.status is 'completed or cancelled; cancelled rows never count.';
comment on column core.fact_service.source_version is 'For ledgers, the version of the ledger the row comes from.';

comment on column core.dim_volunteer.volunteer_id is 'The platform''s own volunteer id.';
comment on column core.dim_volunteer.gender is 'M or F, where given.';
comment on column core.dim_volunteer.birth_year is 'Birth year only.';
comment on column core.dim_volunteer.street_code is 'Street of residence, where given.';
comment on column core.dim_volunteer.community_code is 'Community of residence, where given.';
comment on column core.dim_volunteer.is_party_member is 'Member of the Communist Party of China.';
comment on column core.dim_volunteer.registered_at is 'When the volunteer registered on the platform.';

comment on column core.fact_activity.activity_id is 'The platform''s activity id.';
comment on column core.fact_activity.source_feed is 'The feed the activity came from (volunteer).';
comment on column core.fact_activity.title is 'Title of the activity.';
comment on column core.fact_activity.category is 'Activity category.';
comment on column core.fact_activity.position_code is 'Position where it was held, when a registered position.';
comment on column core.fact_activity.street_code is 'Street where it was held.';
comment on column core.fact_activity.community_code is 'Community where it was held, when known.';
comment on column core.fact_activity.start_at is 'Start time.';
comment on column core.fact_activity.end_at is 'End time.';
comment on column core.fact_activity.participants is 'Participants; null when the platform does not report them.';
comment on column core.fact_activity.organizer_uscc is 'Unified social credit code of the organising body (an organisation, not a person).';
comment on column core.fact_activity.status is 'published, finished or cancelled; cancelled never counts.';

comment on column core.fact_volunteer_hours.record_id is 'The platform''s service-hour record id.';
comment on column core.fact_volunteer_hours.activity_id is 'The activity the hours were served at.';
comment on column core.fact_volunteer_hours.volunteer_id is 'The volunteer.';
comment on column core.fact_volunteer_hours.volunteer_key is 'person_key of the volunteer where the ID number is known, else null.';
comment on column core.fact_volunteer_hours.position_code is 'Position of the activity.';
comment on column core.fact_volunteer_hours.street_code is 'Street of the activity.';
comment on column core.fact_volunteer_hours.service_date is 'Local date of the activity.';
comment on column core.fact_volunteer_hours.hours is 'Hours served.';
comment on column core.fact_volunteer_hours.status is 'confirmed or revoked; revoked never counts.';

comment on column marts.position_monthly.month is 'First day of the month (Asia/Shanghai).';
comment on column marts.position_monthly.position_code is 'The position.';
comment on column marts.position_monthly.level is 'Level of the position.';
comment on column marts.position_monthly.street_code is 'Street of the position.';
comment on column marts.position_monthly.activities is 'Sum of the daily tallies'' activities.';
comment on column marts.position_monthly.participants is 'Sum of the daily tallies'' participants.';
comment on column marts.position_monthly.visitors is 'Sum of the daily tallies'' visitors.';
comment on column marts.position_monthly.volunteer_hours is 'Confirmed hours of activities (not cancelled) held there.';
comment on column marts.position_monthly.services_delivered is 'Completed services delivered there.';
comment on column marts.position_monthly.persons_served is 'Distinct persons of those services.';

comment on column marts.elderly_coverage.month is 'First day of the month.';
comment on column marts.elderly_coverage.street_code is 'Street of the community.';
comment on column marts.elderly_coverage.community_code is 'The community.';
comment on column marts.elderly_coverage.elderly_registered is 'Registered (在册) people aged 60+ living there on the month''s last day.';
comment on column marts.elderly_coverage.elderly_served_any is 'Of them, those with any completed service in the month.';
comment on column marts.elderly_coverage.served_meals is 'Of them, those with a canteen meal.';
comment on column marts.elderly_coverage.served_daycare is 'Of them, those with a day-care visit.';
comment on column marts.elderly_coverage.served_health is 'Of them, those with a health record.';
comment on column marts.elderly_coverage.served_volunteer is 'Of them, those a volunteer helped by name.';
comment on column marts.elderly_coverage.coverage_rate is 'elderly_served_any / elderly_registered; null when none are registered.';

comment on column marts.unreached_vulnerable.person_key is 'The person (pseudonymous).';
comment on column marts.unreached_vulnerable.community_code is 'Current community.';
comment on column marts.unreached_vulnerable.categories is 'Current target groups.';
comment on column marts.unreached_vulnerable.last_service_date is 'Date of the last completed service; null when none.';
comment on column marts.unreached_vulnerable.days_without_service is 'Days from it to the newest service date in the warehouse; null when none.';

comment on column marts.fifteen_minute_circle.community_code is 'The community.';
comment on column marts.fifteen_minute_circle.nearest_position_code is 'Nearest open position.';
comment on column marts.fifteen_minute_circle.distance_m is 'Great-circle distance to it, metres.';
comment on column marts.fifteen_minute_circle.positions_within_1km is 'Open positions within 1,000 m.';
comment on column marts.fifteen_minute_circle.service_areas_within_1km is 'Distinct service areas they offer.';

comment on column marts.volunteer_monthly.month is 'First day of the month.';
comment on column marts.volunteer_monthly.street_code is 'Street where the activities took place.';
comment on column marts.volunteer_monthly.active_volunteers is 'Distinct volunteers with confirmed hours.';
comment on column marts.volunteer_monthly.hours is 'Their confirmed hours.';
comment on column marts.volunteer_monthly.activities is 'Activities not cancelled that started there.';
comment on column marts.volunteer_monthly.party_member_share is 'Share of the active volunteers who are party members.';

comment on column marts.feed_health.feed is 'The feed.';
comment on column marts.feed_health.last_success_at is 'When its last batch was published.';
comment on column marts.feed_health.last_snapshot_or_watermark is 'Newest watermark or snapshot date committed.';
comment on column marts.feed_health.rows_last_load is 'Source rows of each entity''s last published batch.';
comment on column marts.feed_health.quarantined_last_load is 'Rows of those batches quarantined.';
comment on column marts.feed_health.quarantine_rate is 'quarantined_last_load / rows_last_load.';
comment on column marts.feed_health.hours_since_success is 'Hours since last_success_at.';
comment on column marts.feed_health.status is 'ok, stale (over 26 h) or failing (newest batch failed or was rejected).';

comment on column meta.load_audit.load_id is 'The batch.';
comment on column meta.load_audit.feed is 'Feed of the batch.';
comment on column meta.load_audit.entity is 'Entity of the feed.';
comment on column meta.load_audit.run_id is 'Airflow run that loaded it, if any.';
comment on column meta.load_audit.status is 'extracting, extracted, validated, succeeded, rejected or failed.';
comment on column meta.load_audit.started_at is 'When extraction began.';
comment on column meta.load_audit.finished_at is 'When it was published, rejected or failed.';
comment on column meta.load_audit.payloads is 'Payloads (pages, files) landed in raw.';
comment on column meta.load_audit.http_attempts is 'HTTP requests sent, retries included.';
comment on column meta.load_audit.source_rows is 'Records read; = accepted + quarantined + duplicate.';
comment on column meta.load_audit.accepted_rows is 'Records staged for publishing.';
comment on column meta.load_audit.quarantined_rows is 'Records rejected into quarantine.';
comment on column meta.load_audit.duplicate_rows is 'Records superseded by another of the same key in the batch.';
comment on column meta.load_audit.inserted_rows is 'Core rows inserted (history: versions opened).';
comment on column meta.load_audit.updated_rows is 'Core rows changed (history: versions closed; ledgers: rows replaced).';
comment on column meta.load_audit.unchanged_rows is 'Accepted rows that changed nothing.';
comment on column meta.load_audit.extra_columns is 'Fields the source sent that the interface does not name.';
comment on column meta.load_audit.watermark is 'Watermark committed with the batch.';
comment on column meta.load_audit.error is 'Why the batch failed or was rejected.';

comment on column meta.feed_state.feed is 'The feed.';
comment on column meta.feed_state.entity is 'The entity.';
comment on column meta.feed_state.watermark is 'Last committed watermark or snapshot date.';
comment on column meta.feed_state.snapshot_sha256 is 'Checksum of the payloads of the last committed batch.';
comment on column meta.feed_state.load_id is 'The batch that committed it.';
comment on column meta.feed_state.committed_at is 'When.';

comment on column meta.dq_result.load_id is 'The batch.';
comment on column meta.dq_result.suite is 'Expectation suite (feed.entity).';
comment on column meta.dq_result.expectation is 'The expectation and its column.';
comment on column meta.dq_result.success is 'Whether every row met it.';
comment on column meta.dq_result.unexpected_count is 'Rows that did not.';
comment on column meta.dq_result.unexpected_percent is 'Their share, percent.';
comment on column meta.dq_result.evaluated_at is 'When it was evaluated.';

comment on table meta.schema_migration is 'Warehouse migrations applied: one row per file in sql/migrations.';
comment on column meta.schema_migration.version is 'Migration version.';
comment on column meta.schema_migration.name is 'Migration name.';
comment on column meta.schema_migration.checksum is 'sha256 of the file as applied.';
comment on column meta.schema_migration.applied_at is 'When it was applied.';
comment on column core.dim_person.person_key is
    'HMAC-SHA256 of the normalised ID number: the same person has the same key in every feed.';
comment on column core.dim_volunteer.volunteer_key is
    'person_key of the volunteer where the ID number is known, else null.';
