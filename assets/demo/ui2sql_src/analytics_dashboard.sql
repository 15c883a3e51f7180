CREATE TABLE sites (
  id INTEGER PRIMARY KEY,
  domain VARCHAR(255) NOT NULL UNIQUE,
  timezone VARCHAR(64) NOT NULL DEFAULT 'UTC',
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE visitors (
  id BIGINT PRIMARY KEY,
  site_id INTEGER NOT NULL REFERENCES sites(id),
  fingerprint CHAR(32) NOT NULL,
  first_seen TIMESTAMP NOT NULL,
  UNIQUE (site_id, fingerprint)
);

CREATE TABLE sessions (
  id BIGINT PRIMARY KEY,
  visitor_id BIGINT NOT NULL REFERENCES visitors(id),
  source VARCHAR(80),
  medium VARCHAR(40),
  started_at TIMESTAMP NOT NULL,
  ended_at TIMESTAMP,
  is_bounce BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE page_views (
  id BIGINT PRIMARY KEY,
  session_id BIGINT NOT NULL REFERENCES sessions(id),
  path VARCHAR(500) NOT NULL,
  viewed_at TIMESTAMP NOT NULL,
  time_on_page_s INTEGER
);

CREATE TABLE conversions (
  id BIGINT PRIMARY KEY,
  session_id BIGINT NOT NULL REFERENCES sessions(id),
  goal_name VARCHAR(80) NOT NULL,
  value DECIMAL(10, 2),
  converted_at TIMESTAMP NOT NULL
);
