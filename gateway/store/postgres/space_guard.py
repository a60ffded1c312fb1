"""The store refuses a vector outside the live embedding spaces (migration 4; as SQLite's
``space_guard``, migration 14).

Row triggers compare each written label with ``model_state`` in the writing transaction: a
memory's must be its model's active version, a shadow vector's the migration target; a label
whose model has no recorded state is not checked. A memory write takes the feed's advisory
lock before its first row (``feed.locked``), and the switch holds it, so a write that waited
for a switch reads the switched state (each statement reads what has committed before it).
The refusal carries its own SQLSTATE, which ``faults`` turns into ``StaleVersion``.
"""

from __future__ import annotations

SQLSTATE = "AMV01"  # "agent memory: stale version", a code of the project's own

SCHEMA = f"""
CREATE FUNCTION stale_label(label TEXT, live TEXT) RETURNS BOOLEAN LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM model_state s
                   WHERE left(label, length(s.model) + 1) = s.model || ':'
                     AND label IS DISTINCT FROM s.model || ':' || CASE live
                         WHEN 'active' THEN s.active ELSE s.target END)
$$;

CREATE FUNCTION memory_in_active_space() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF stale_label(NEW.embedding_model, 'active') THEN
        RAISE EXCEPTION 'stale embedding version: % is not the active one', NEW.embedding_model
            USING ERRCODE = '{SQLSTATE}';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER memory_in_active_space BEFORE INSERT ON memories
    FOR EACH ROW EXECUTE FUNCTION memory_in_active_space();
-- a metadata-only update keeps the row's label and vector: never refused
CREATE TRIGGER memory_stays_in_active_space BEFORE UPDATE ON memories FOR EACH ROW
    WHEN (NEW.embedding_model IS DISTINCT FROM OLD.embedding_model
          OR NEW.embedding IS DISTINCT FROM OLD.embedding)
    EXECUTE FUNCTION memory_in_active_space();

CREATE FUNCTION shadow_in_target_space() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF stale_label(NEW.model, 'target') THEN
        RAISE EXCEPTION 'stale embedding version: % is not the migration target', NEW.model
            USING ERRCODE = '{SQLSTATE}';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER shadow_in_target_space BEFORE INSERT OR UPDATE ON shadow_vectors
    FOR EACH ROW EXECUTE FUNCTION shadow_in_target_space();
"""
