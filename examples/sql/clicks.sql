-- Clicks per user and 10-second window, written as CSV; run with
--   cargo run --release -p weir-engine --bin weir -- sql examples/sql/clicks.sql
-- and watch http://127.0.0.1:9249/metrics while it runs.

CREATE TABLE clicks (
  user_id BIGINT,
  url STRING,
  seq BIGINT,
  ts AS TO_TIMESTAMP_LTZ(seq * 10, 3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'datagen',
  'rows-per-second' = '200000',
  'number-of-rows' = '1000000',
  'fields.user_id.min' = '1',
  'fields.user_id.max' = '100',
  'fields.url.length' = '8',
  'fields.seq.kind' = 'sequence',
  'fields.seq.start' = '1',
  'fields.seq.end' = '1000000'
);

CREATE TABLE per_user (
  user_id BIGINT,
  window_start TIMESTAMP(3),
  clicks BIGINT
) WITH (
  'connector' = 'filesystem',
  'path' = '/tmp/weir-clicks',
  'format' = 'csv'
);

INSERT INTO per_user
SELECT user_id, window_start, COUNT(*) AS clicks
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, user_id;
