-- Every node forgets its remembered apikeys when an account changes: announced by the
-- database itself, in the same transaction as the change (a NOTIFY is delivered when its
-- transaction commits, and only then), so no change can commit unannounced (a node that
-- crashed, or a command-line tool that closed its pool, right after its commit). A login's
-- `lastlogin` changes nothing a node remembers and is not announced (unless the same update
-- changes a key or the password too).
CREATE FUNCTION ynni_announce_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ynni_catalog_keys', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER users_key_change_update AFTER UPDATE ON users
    FOR EACH ROW WHEN (OLD.lastlogin IS NOT DISTINCT FROM NEW.lastlogin
        OR OLD.apikey_read IS DISTINCT FROM NEW.apikey_read
        OR OLD.apikey_write IS DISTINCT FROM NEW.apikey_write
        OR OLD.password IS DISTINCT FROM NEW.password)
    EXECUTE FUNCTION ynni_announce_key_change();

CREATE TRIGGER users_key_change_delete AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION ynni_announce_key_change();
