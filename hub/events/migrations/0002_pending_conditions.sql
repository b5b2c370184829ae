-- Wangge events store, schema version 2.
-- Duration conditions (`for_s`) that hold on a component but have not held long enough to raise:
-- when each began. The rules write a row when such a condition starts holding and delete it when
-- it raises or stops holding, so a hub restart in the middle does not start the count again (and
-- miss an incident that ends before a second full `for_s`).
CREATE TABLE pending_conditions (
    component_id TEXT NOT NULL,
    -- `<rule index in the rules file>:<event type>` (see `rules::Evaluator::rule_key`).
    rule_key     TEXT NOT NULL,
    since_ns     INTEGER NOT NULL,
    PRIMARY KEY (component_id, rule_key)
) WITHOUT ROWID;
