-- Lead status values that this layer adds (contract section 2): not_interested
-- and dead are failed outcomes. In a file of their own because a new enum value
-- can only be used once the transaction that added it has committed.

alter type public.lead_status add value if not exists 'not_interested';
alter type public.lead_status add value if not exists 'dead';
