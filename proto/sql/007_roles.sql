-- Least privilege: what each service's own login role may do in this schema.
--
-- Migrations run as the owner of the tables. The services never do: each connects as a role
-- of its own, named by the deployment (several deployments, or test runs, share one cluster
-- with roles of different names), and deploy/local/migrate --role KIND=NAME calls
-- hookline_grant(KIND, NAME) after every run, so the grants always match the tables the
-- migrations made. The kinds:
--
--   persister  reads and inserts webhook_events (never updates or deletes a stored event),
--              reads and writes consumer_offsets; nothing of the auditor's tables.
--   auditor    the auditor's writer: reads every table, inserts lineage and
--              lineage_checkpoints (append-only: no UPDATE, DELETE or TRUNCATE privilege, and
--              the triggers of 003 refuse them too), inserts and updates latency_rollups and
--              consumer_offsets; webhook_events read only.
--   reader     reads every table and view: the auditor's API and `hookline verify`.
--
-- Grants are per table, never per column, so migrations that add columns or constraints need
-- no change here; a migration that adds a table replaces this function with one that names it.
-- None of these roles owns anything here, so none can ALTER, DROP or TRUNCATE a table or
-- disable a trigger. hookline_grant refuses a role that could: one with SUPERUSER, CREATEROLE
-- or BYPASSRLS, or one that is (or may become, SET ROLE) the owner of this schema or of
-- anything in it. It revokes what the role held here before granting, so running it again
-- with a narrower definition takes privileges away.
CREATE FUNCTION hookline_grant(kind text, grantee text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sch text := current_schema();
    r pg_roles%ROWTYPE;
BEGIN
    IF kind IS NULL OR kind NOT IN ('persister', 'auditor', 'reader') THEN
        RAISE EXCEPTION 'hookline_grant: kind %: expected persister, auditor or reader',
            coalesce(kind, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO r FROM pg_roles WHERE rolname = grantee;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'hookline_grant: role "%" does not exist', grantee
            USING ERRCODE = 'undefined_object';
    END IF;
    IF r.rolsuper OR r.rolcreaterole OR r.rolbypassrls THEN
        RAISE EXCEPTION 'hookline_grant: role "%" has SUPERUSER, CREATEROLE or BYPASSRLS: a % role must have none', grantee, kind
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = sch
                 AND pg_has_role(grantee, n.nspowner, 'MEMBER'))
       OR EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = sch AND pg_has_role(grantee, c.relowner, 'MEMBER')) THEN
        RAISE EXCEPTION 'hookline_grant: role "%" owns (or can act as the owner of) schema % or its tables', grantee, sch
            USING ERRCODE = 'insufficient_privilege';
    END IF;

    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', sch, grantee);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM %I', sch, grantee);
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', sch, grantee);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', sch, grantee);
    IF kind = 'persister' THEN
        EXECUTE format('GRANT SELECT, INSERT ON %I.webhook_events TO %I', sch, grantee);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I.consumer_offsets TO %I', sch, grantee);
        EXECUTE format('GRANT USAGE ON SEQUENCE %I.webhook_events_id_seq TO %I', sch, grantee);
    ELSIF kind = 'auditor' THEN
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', sch, grantee);
        EXECUTE format('GRANT INSERT ON %I.lineage, %I.lineage_checkpoints TO %I',
                       sch, sch, grantee);
        EXECUTE format('GRANT INSERT, UPDATE ON %I.latency_rollups, %I.consumer_offsets TO %I',
                       sch, sch, grantee);
        EXECUTE format('GRANT USAGE ON SEQUENCE %I.lineage_id_seq, %I.lineage_checkpoints_id_seq TO %I',
                       sch, sch, grantee);
    ELSE
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', sch, grantee);
    END IF;
END
$$;

-- Runs in this schema whatever the caller's search_path; only the owner may call it.
ALTER FUNCTION hookline_grant(text, text) SET search_path FROM CURRENT;
REVOKE ALL ON FUNCTION hookline_grant(text, text) FROM PUBLIC;
