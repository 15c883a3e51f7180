CREATE TABLE lists (
  id INTEGER PRIMARY KEY,
  name VARCHAR(80) NOT NULL UNIQUE,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE subscribers (
  id INTEGER PRIMARY KEY,
  email VARCHAR(255) NOT NULL UNIQUE,
  first_name VARCHAR(80),
  status VARCHAR(16) NOT NULL DEFAULT 'subscribed',
  last_activity_at TIMESTAMP
);

CREATE TABLE list_members (
  list_id INTEGER NOT NULL REFERENCES lists(id),
  subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
  joined_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (list_id, subscriber_id)
);

CREATE TABLE campaigns (
  id INTEGER PRIMARY KEY,
  name VARCHAR(120) NOT NULL,
  subject VARCHAR(200),
  list_id INTEGER NOT NULL REFERENCES lists(id),
  status VARCHAR(12) NOT NULL DEFAULT 'draft',
  scheduled_at TIMESTAMP,
  sent_at TIMESTAMP,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE deliveries (
  campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
  subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
  delivered BOOLEAN NOT NULL DEFAULT FALSE,
  bounced BOOLEAN NOT NULL DEFAULT FALSE,
  opened_at TIMESTAMP,
  clicked_at TIMESTAMP,
  unsubscribed_at TIMESTAMP,
  PRIMARY KEY (campaign_id, subscriber_id)
);
