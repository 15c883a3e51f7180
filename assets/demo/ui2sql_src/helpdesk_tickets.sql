CREATE TABLE organizations (
  id INTEGER PRIMARY KEY,
  name VARCHAR(160) NOT NULL UNIQUE
);

CREATE TABLE requesters (
  id INTEGER PRIMARY KEY,
  organization_id INTEGER REFERENCES organizations(id),
  name VARCHAR(120) NOT NULL,
  email VARCHAR(255) NOT NULL UNIQUE
);

CREATE TABLE agents (
  id INTEGER PRIMARY KEY,
  name VARCHAR(120) NOT NULL,
  email VARCHAR(255) NOT NULL UNIQUE,
  active BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE TABLE tickets (
  id INTEGER PRIMARY KEY,
  subject VARCHAR(200) NOT NULL,
  requester_id INTEGER NOT NULL REFERENCES requesters(id),
  assignee_id INTEGER REFERENCES agents(id),
  status VARCHAR(12) NOT NULL DEFAULT 'open',
  priority VARCHAR(8) NOT NULL DEFAULT 'normal',
  category VARCHAR(40),
  channel VARCHAR(12) NOT NULL DEFAULT 'email',
  sla_due_at TIMESTAMP,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  solved_at TIMESTAMP
);

CREATE TABLE ticket_messages (
  id INTEGER PRIMARY KEY,
  ticket_id INTEGER NOT NULL REFERENCES tickets(id),
  requester_id INTEGER REFERENCES requesters(id),
  agent_id INTEGER REFERENCES agents(id),
  body TEXT NOT NULL,
  is_internal_note BOOLEAN NOT NULL DEFAULT FALSE,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
