"""Idempotency keys: a claim per (key, route), then the stored answer."""

from __future__ import annotations

from db_utils import HOLDER_LOCK_CLASS

IDEMPOTENCY_KEEP_HOURS = 24


def claim(
    conn, key: str, route: str, fingerprint: str, lease_seconds: float, holder: int
) -> tuple[str, int | None, str | None] | None:
    """Claim (key, route) for a request of process `holder` (`db_utils.process_holder`): None
    when claimed (new, or a claim of the same body whose holder died or that was abandoned for
    `lease_seconds`), else the stored (fingerprint, status, body); status None while the first
    request runs."""
    with conn.cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO idempotency_keys (key, route, fingerprint, holder) VALUES (%s, %s, %s, %s)
            ON CONFLICT (key, route) DO UPDATE SET claimed_at = now(), holder = EXCLUDED.holder
                WHERE idempotency_keys.status IS NULL AND idempotency_keys.fingerprint = EXCLUDED.fingerprint
                  AND (idempotency_keys.claimed_at < now() - make_interval(secs => %s)
                       OR NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                                      AND classid = {HOLDER_LOCK_CLASS} AND objid = idempotency_keys.holder
                                      AND objsubid = 2))
            RETURNING 1
            """,
            (key, route, fingerprint, holder, lease_seconds),
        )
        if cur.fetchone():
            return None
        cur.execute(
            "SELECT fingerprint, status, body FROM idempotency_keys WHERE key = %s AND route = %s",
            (key, route),
        )
        return cur.fetchone()


def finish(conn, key: str, route: str, status: int | None, body: str | None) -> None:
    """Store the answer of the request that claimed the key, or (status None) release the key."""
    with conn.cursor() as cur:
        if status is None:
            cur.execute(
                "DELETE FROM idempotency_keys WHERE key = %s AND route = %s AND status IS NULL", (key, route)
            )
        else:
            cur.execute(
                "UPDATE idempotency_keys SET status = %s, body = %s"
                " WHERE key = %s AND route = %s AND status IS NULL",
                (status, body, key, route),
            )


def purge(conn) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM idempotency_keys WHERE claimed_at < now() - make_interval(hours => %s)",
            (IDEMPOTENCY_KEEP_HOURS,),
        )
