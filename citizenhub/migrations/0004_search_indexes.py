"""Indexes for the staff search box (citizenhub.search), on PostgreSQL only.

Name search has three tiers, each an index scan that stops after one page:

- prefix of the full name ("jane sm") or of the family name ("smi"): btree indexes on the
  lower-cased names in the "C" collation, with the id as tie-break, so a prefix is an
  ordered range scan whatever the database's own collation (a LIKE prefix cannot use a
  btree index in a linguistic collation such as en_GB.UTF-8);
- fuzzy ("Jonh Smith"): pg_trgm similarity (`%`, ranked by similarity()) over a *lexicon*
  of the distinct lower-cased full names, with a GIN trigram index, then the citizens of the
  closest names through the full-name btree. Matching trigrams on the citizen rows directly
  costs a heap recheck per matching row: measured on 1,000,000 profiles carrying a few
  thousand distinct names (as generated and demo data do), "smith" matched 40,000 rows and
  took about a second; through the lexicon it reads a few hundred index entries. The lexicon
  holds names only, with no link to anyone; statement triggers keep it in step with
  citizenhub_citizen, and a name leaves it once no profile has it, so an erased name does
  not linger.

Also a pattern index on the address postcode (outward-code prefixes: "NM1" finds NM1 4AB)
and a GIN trigram index on case titles.

The expressions must stay exactly as citizenhub.search writes them, or the planner will not
use the indexes. SQLite has no trigram support: it searches without these (correct, slower).
The big indexes are built CONCURRENTLY (outside a transaction), so adding them to a live
database with a million profiles does not block writes while they build. If a concurrent
build fails it leaves an INVALID index behind: drop it and migrate again.
"""

from django.db import migrations, transaction


def full_name(alias: str = "") -> str:
    """The lower-cased full name exactly as the indexes and citizenhub.search write it."""
    prefix = f"{alias}." if alias else ""
    return f"lower(({prefix}given_name)::text || ' ' || ({prefix}family_name)::text)"


INDEXES = (
    ("citizen_full_name_prefix_idx", f'citizenhub_citizen (({full_name()} COLLATE "C"), id)'),
    (
        "citizen_family_name_prefix_idx",
        'citizenhub_citizen ((lower((family_name)::text) COLLATE "C"), id)',
    ),
    ("address_postcode_prefix_idx", "citizenhub_address (postcode varchar_pattern_ops)"),
    # fastupdate off: new entries go straight into the index instead of a pending list
    # that every search would read through until vacuum tidies it (cases arrive slowly).
    (
        "case_title_trgm_idx",
        "citizenhub_servicecase USING gin ((lower((title)::text)) gin_trgm_ops) "
        "WITH (fastupdate = off)",
    ),
)

# One function behind three statement-level triggers: transition tables let a bulk load
# (COPY of a million profiles) update the lexicon in one statement instead of once per row.
# Names are inserted in sorted order so that two concurrent loads cannot deadlock on them.
# The triggers exist before the backfill reads the table, in the same transaction, so no
# profile written meanwhile is missed.
LEXICON_SQL = f"""
CREATE TABLE IF NOT EXISTS citizenhub_name_lexicon (name text COLLATE "C" PRIMARY KEY);

CREATE OR REPLACE FUNCTION citizenhub_name_lexicon_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO citizenhub_name_lexicon (name)
        SELECT DISTINCT {full_name("n")} FROM new_rows n ORDER BY 1
        ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM citizenhub_name_lexicon l
        USING (SELECT DISTINCT {full_name("o")} AS name FROM old_rows o) gone
        WHERE l.name = gone.name
          AND NOT EXISTS (
              SELECT 1 FROM citizenhub_citizen c
              WHERE ({full_name("c")} COLLATE "C") = gone.name
          );
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS citizenhub_name_lexicon_insert ON citizenhub_citizen;
CREATE TRIGGER citizenhub_name_lexicon_insert AFTER INSERT ON citizenhub_citizen
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION citizenhub_name_lexicon_sync();
DROP TRIGGER IF EXISTS citizenhub_name_lexicon_update ON citizenhub_citizen;
CREATE TRIGGER citizenhub_name_lexicon_update AFTER UPDATE ON citizenhub_citizen
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION citizenhub_name_lexicon_sync();
DROP TRIGGER IF EXISTS citizenhub_name_lexicon_delete ON citizenhub_citizen;
CREATE TRIGGER citizenhub_name_lexicon_delete AFTER DELETE ON citizenhub_citizen
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION citizenhub_name_lexicon_sync();

INSERT INTO citizenhub_name_lexicon (name)
SELECT DISTINCT {full_name()} FROM citizenhub_citizen ORDER BY 1
ON CONFLICT DO NOTHING;

-- Built after the backfill (one bulk build); fastupdate off as for case titles.
CREATE INDEX IF NOT EXISTS citizenhub_name_lexicon_trgm_idx
    ON citizenhub_name_lexicon USING gin (name gin_trgm_ops) WITH (fastupdate = off);
ANALYZE citizenhub_name_lexicon;

-- The closest names to a term. The planner prices pg_trgm's similarity like an integer
-- comparison, so for a lexicon of a few thousand (or tens of thousands of) names it picks
-- a sequential scan computing every similarity (~40 ms) over the GIN index, which reads a
-- few hundred entries (~1 ms). The SET clause tells it the truth about operator cost for
-- this function only (and keeps the function from being inlined into the caller's plan).
-- ROWS 10 is what search asks for: the default guess of 1,000 rows made the caller's plan
-- look expensive enough for JIT compilation, which alone cost 80 ms per search.
CREATE OR REPLACE FUNCTION citizenhub_similar_names(term text, how_many integer)
RETURNS TABLE (name text, score real)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 10
SET cpu_operator_cost = 0.25
AS $$
    SELECT l.name, similarity(l.name, term) AS score
    FROM citizenhub_name_lexicon l
    WHERE l.name % term
    ORDER BY score DESC, l.name
    LIMIT how_many
$$;
"""  # noqa: S608 - only the constant full_name() expressions are formatted in

DROP_LEXICON_SQL = """
DROP TRIGGER IF EXISTS citizenhub_name_lexicon_insert ON citizenhub_citizen;
DROP TRIGGER IF EXISTS citizenhub_name_lexicon_update ON citizenhub_citizen;
DROP TRIGGER IF EXISTS citizenhub_name_lexicon_delete ON citizenhub_citizen;
DROP FUNCTION IF EXISTS citizenhub_name_lexicon_sync();
DROP FUNCTION IF EXISTS citizenhub_similar_names(text, integer);
DROP TABLE IF EXISTS citizenhub_name_lexicon;
"""


def create_search_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # The lexicon, its triggers and its backfill are one unit: a crash half-way must not
    # leave triggers without a table, or a table missing the names of existing profiles.
    with transaction.atomic(using=schema_editor.connection.alias):
        # No parameters: the SQL has a literal % (the trigram operator) psycopg must keep.
        schema_editor.execute(LEXICON_SQL, params=None)
    for name, definition in INDEXES:
        schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {definition}")


def drop_search_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    # The extension stays: other code (duplicate scoring, reports) may use it too.
    for name, _definition in INDEXES:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    schema_editor.execute(DROP_LEXICON_SQL, params=None)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("citizenhub", "0003_duplicate_candidates"),
    ]

    operations = [
        migrations.RunPython(create_search_indexes, drop_search_indexes, elidable=False),
    ]
