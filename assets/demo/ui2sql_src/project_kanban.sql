CREATE TABLE projects (
  id INTEGER PRIMARY KEY,
  key VARCHAR(8) NOT NULL UNIQUE,
  name VARCHAR(120) NOT NULL
);

CREATE TABLE members (
  id INTEGER PRIMARY KEY,
  full_name VARCHAR(120) NOT NULL,
  initials VARCHAR(3) NOT NULL,
  email VARCHAR(255) NOT NULL UNIQUE
);

CREATE TABLE sprints (
  id INTEGER PRIMARY KEY,
  project_id INTEGER NOT NULL REFERENCES projects(id),
  number INTEGER NOT NULL,
  starts_on DATE NOT NULL,
  ends_on DATE NOT NULL,
  UNIQUE (project_id, number)
);

CREATE TABLE tasks (
  id INTEGER PRIMARY KEY,
  project_id INTEGER NOT NULL REFERENCES projects(id),
  sprint_id INTEGER REFERENCES sprints(id),
  number INTEGER NOT NULL,
  title VARCHAR(200) NOT NULL,
  kind VARCHAR(12) NOT NULL DEFAULT 'feature',
  priority VARCHAR(8),
  status VARCHAR(16) NOT NULL DEFAULT 'backlog',
  story_points INTEGER,
  assignee_id INTEGER REFERENCES members(id),
  due_date DATE,
  pull_request VARCHAR(20),
  closed_at TIMESTAMP,
  UNIQUE (project_id, number)
);

CREATE TABLE task_comments (
  id INTEGER PRIMARY KEY,
  task_id INTEGER NOT NULL REFERENCES tasks(id),
  author_id INTEGER NOT NULL REFERENCES members(id),
  body TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
