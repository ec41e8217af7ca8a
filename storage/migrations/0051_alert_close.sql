-- Why and by whom an alert (incident) was closed: the detector (flow_stopped, meter_exchanged) or a
-- dispatcher (repaired, customer_informed, false_alarm, meter_exchanged). Shared by the leak incidents
-- and the dispatcher's workflow.
ALTER TABLE alerts
    ADD COLUMN IF NOT EXISTS close_reason text,
    ADD COLUMN IF NOT EXISTS closed_by    text;
