"""PostgreSQL enforces the ledger: every INSERT of transfers (ORM, raw SQL or bulk) is validated and applied to
the balance counters by one statement-level trigger, in the same transaction.

Errors carry our own SQLSTATEs (class LG) so the service layer can name them:
  LG001 closed period · LG002 currency mismatch · LG003 closed account · LG004 bad pending resolution
  LG005 bad reversal · LG006 unknown account or transfer · LG008 counters changed outside a transfer.
Overdraft limits are the CHECK constraints on ledger_account (SQLSTATE 23514).
"""

from django.db import migrations

APPLY_FUNCTION = r"""
CREATE OR REPLACE FUNCTION ledger_transfer_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad record;
BEGIN
  -- Lock every account the statement touches, in id order, so concurrent statements cannot deadlock.
  PERFORM set_config('ledger.applying', 'on', true);
  PERFORM 1 FROM ledger_account
   WHERE id IN (SELECT debit_account_id FROM new_transfers UNION SELECT credit_account_id FROM new_transfers)
   ORDER BY id FOR NO KEY UPDATE;

  -- Accounts must exist, be open and be in the transfer's currency, and the date must be in an open month.
  -- (Foreign keys are only checked at commit; checking here gives a clear error at once.)
  SELECT t.idempotency_key, t.currency, t.effective_date, t.debit_account_id, t.credit_account_id,
         d.code AS debit_code, c.code AS credit_code, d.currency AS debit_currency, c.currency AS credit_currency,
         d.closed AS debit_closed, c.closed AS credit_closed, d.id IS NULL OR c.id IS NULL AS missing,
         p.month IS NOT NULL AS in_closed_period
    INTO bad
    FROM new_transfers t
    LEFT JOIN ledger_account d ON d.id = t.debit_account_id
    LEFT JOIN ledger_account c ON c.id = t.credit_account_id
    LEFT JOIN ledger_closedperiod p ON p.month = date_trunc('month', t.effective_date)::date
   WHERE d.id IS NULL OR c.id IS NULL OR d.closed OR c.closed OR d.currency <> t.currency
      OR c.currency <> t.currency OR p.month IS NOT NULL
   LIMIT 1;
  IF FOUND THEN
    IF bad.missing THEN
      RAISE EXCEPTION USING ERRCODE = 'LG006', MESSAGE = format(
        'ledger: transfer %s names an account that does not exist (%s or %s)',
        bad.idempotency_key, bad.debit_account_id, bad.credit_account_id);
    ELSIF bad.debit_closed OR bad.credit_closed THEN
      RAISE EXCEPTION USING ERRCODE = 'LG003', MESSAGE = format(
        'ledger: account %s is closed (transfer %s)',
        CASE WHEN bad.debit_closed THEN bad.debit_code ELSE bad.credit_code END, bad.idempotency_key);
    ELSIF bad.in_closed_period THEN
      RAISE EXCEPTION USING ERRCODE = 'LG001', MESSAGE = format(
        'ledger: transfer %s is dated %s, inside a closed period', bad.idempotency_key, bad.effective_date);
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'LG002', MESSAGE = format(
      'ledger: transfer %s is in %s but account %s is in %s and account %s is in %s',
      bad.idempotency_key, bad.currency, bad.debit_code, bad.debit_currency, bad.credit_code, bad.credit_currency);
  END IF;

  -- Plain postings are done validating; resolutions and reversals have more to check.
  IF EXISTS (SELECT 1 FROM new_transfers WHERE pending_id IS NOT NULL OR reverses_id IS NOT NULL) THEN
    SELECT t.idempotency_key INTO bad FROM new_transfers t
     WHERE (t.pending_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger_transfer p WHERE p.id = t.pending_id))
        OR (t.reverses_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger_transfer r WHERE r.id = t.reverses_id))
     LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'LG006', MESSAGE = format(
        'ledger: transfer %s resolves or reverses a transfer that does not exist', bad.idempotency_key);
    END IF;

    -- Posting, voiding or expiring must match the pending transfer it resolves.
    SELECT t.idempotency_key, t.phase, t.amount, p.idempotency_key AS pending_key, p.phase AS pending_phase,
           p.amount AS pending_amount, p.timeout_at,
           (p.debit_account_id <> t.debit_account_id OR p.credit_account_id <> t.credit_account_id
            OR p.currency <> t.currency) AS other_accounts
      INTO bad
      FROM new_transfers t
      JOIN ledger_transfer p ON p.id = t.pending_id
     WHERE p.phase <> 'pending'
        OR p.debit_account_id <> t.debit_account_id OR p.credit_account_id <> t.credit_account_id
        OR p.currency <> t.currency
        OR (t.phase = 'post_pending' AND t.amount > p.amount)
        OR (t.phase IN ('void_pending', 'expire_pending') AND t.amount <> p.amount)
        OR (t.phase = 'post_pending' AND p.timeout_at IS NOT NULL AND p.timeout_at <= t.recorded_at)
        OR (t.phase = 'expire_pending' AND (p.timeout_at IS NULL OR p.timeout_at > t.recorded_at))
     LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'LG004', MESSAGE = format('ledger: transfer %s cannot %s %s: %s',
        bad.idempotency_key, replace(bad.phase, '_pending', ''), bad.pending_key,
        CASE
          WHEN bad.pending_phase <> 'pending' THEN 'it is not a pending transfer'
          WHEN bad.other_accounts THEN 'the accounts or currency differ from the pending transfer'
          WHEN bad.phase = 'post_pending' AND bad.amount > bad.pending_amount
            THEN format('%s exceeds the pending %s', bad.amount, bad.pending_amount)
          WHEN bad.phase = 'post_pending' THEN 'the pending transfer has expired'
          WHEN bad.phase = 'expire_pending' THEN 'the pending transfer has not timed out'
          ELSE format('the amount must be the pending %s', bad.pending_amount)
        END);
    END IF;

    -- A reversal mirrors a posted transfer exactly.
    SELECT t.idempotency_key, r.idempotency_key AS reversed_key INTO bad
      FROM new_transfers t
      JOIN ledger_transfer r ON r.id = t.reverses_id
     WHERE r.phase NOT IN ('posted', 'post_pending')
        OR r.debit_account_id <> t.credit_account_id OR r.credit_account_id <> t.debit_account_id
        OR r.amount <> t.amount OR r.currency <> t.currency
     LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'LG005', MESSAGE = format(
        'ledger: transfer %s must mirror the posted transfer %s it reverses (accounts swapped, same amount)',
        bad.idempotency_key, bad.reversed_key);
    END IF;
  END IF;

  -- Apply every transfer to the counters, one UPDATE per account for the whole statement. The CHECK
  -- constraints on ledger_account enforce the no-overdraft limits on the result.
  WITH moves AS (
    -- A correlated lookup, not a join: the planner cannot size the transition table and would otherwise
    -- hash-join the whole transfer table for a batch of plain postings.
    SELECT t.debit_account_id, t.credit_account_id, t.phase,
           CASE WHEN t.phase = 'pending' THEN t.amount
                WHEN t.phase = 'posted' THEN 0
                ELSE -(SELECT p.amount FROM ledger_transfer p WHERE p.id = t.pending_id) END AS pending_change,
           CASE WHEN t.phase IN ('posted', 'post_pending') THEN t.amount ELSE 0 END AS posted_change
      FROM new_transfers t
  ), effects AS (
    SELECT debit_account_id AS account_id, pending_change AS dpend, posted_change AS dpost,
           0::bigint AS cpend, 0::bigint AS cpost FROM moves
    UNION ALL
    SELECT credit_account_id, 0, 0, pending_change, posted_change FROM moves
  ), totals AS (
    SELECT account_id, sum(dpend)::bigint AS dpend, sum(dpost)::bigint AS dpost,
           sum(cpend)::bigint AS cpend, sum(cpost)::bigint AS cpost
      FROM effects GROUP BY account_id
  )
  UPDATE ledger_account a
     SET debits_pending = a.debits_pending + t.dpend, debits_posted = a.debits_posted + t.dpost,
         credits_pending = a.credits_pending + t.cpend, credits_posted = a.credits_posted + t.cpost
    FROM totals t
   WHERE a.id = t.account_id;
  PERFORM set_config('ledger.applying', 'off', true);
  RETURN NULL;
END
$$;

CREATE TRIGGER ledger_transfer_apply
  AFTER INSERT ON ledger_transfer
  REFERENCING NEW TABLE AS new_transfers
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfer_apply();
"""

GUARD_FUNCTION = r"""
CREATE OR REPLACE FUNCTION ledger_account_guard_counters() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF (NEW.debits_pending, NEW.debits_posted, NEW.credits_pending, NEW.credits_posted) <> (0, 0, 0, 0) THEN
      RAISE EXCEPTION USING ERRCODE = 'LG008', MESSAGE = 'ledger: a new account starts with zero balances';
    END IF;
  ELSIF (NEW.debits_pending, NEW.debits_posted, NEW.credits_pending, NEW.credits_posted)
        IS DISTINCT FROM (OLD.debits_pending, OLD.debits_posted, OLD.credits_pending, OLD.credits_posted)
        AND current_setting('ledger.applying', true) IS DISTINCT FROM 'on' THEN
    RAISE EXCEPTION USING ERRCODE = 'LG008',
      MESSAGE = format('ledger: the balances of account %s change only through transfers', OLD.code);
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER ledger_account_guard_counters
  BEFORE INSERT OR UPDATE ON ledger_account
  FOR EACH ROW EXECUTE FUNCTION ledger_account_guard_counters();
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_ledger")]

    operations = [
        migrations.RunSQL(
            APPLY_FUNCTION,
            "DROP TRIGGER ledger_transfer_apply ON ledger_transfer; DROP FUNCTION ledger_transfer_apply();",
        ),
        migrations.RunSQL(
            GUARD_FUNCTION,
            "DROP TRIGGER ledger_account_guard_counters ON ledger_account;"
            " DROP FUNCTION ledger_account_guard_counters();",
        ),
    ]
