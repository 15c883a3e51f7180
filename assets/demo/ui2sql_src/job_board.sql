CREATE TABLE companies (
  id INTEGER PRIMARY KEY,
  name VARCHAR(160) NOT NULL UNIQUE,
  employee_count INTEGER,
  headquarters VARCHAR(120)
);

CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  company_id INTEGER NOT NULL REFERENCES companies(id),
  title VARCHAR(160) NOT NULL,
  location VARCHAR(120) NOT NULL,
  remote_policy VARCHAR(20) NOT NULL DEFAULT 'onsite',
  employment_type VARCHAR(20) NOT NULL DEFAULT 'full_time',
  salary_min INTEGER,
  salary_max INTEGER,
  day_rate INTEGER,
  currency CHAR(3) NOT NULL DEFAULT 'EUR',
  min_years_experience INTEGER,
  description TEXT NOT NULL,
  posted_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE skills (
  id INTEGER PRIMARY KEY,
  name VARCHAR(40) NOT NULL UNIQUE
);

CREATE TABLE job_skills (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  skill_id INTEGER NOT NULL REFERENCES skills(id),
  PRIMARY KEY (job_id, skill_id)
);

CREATE TABLE candidates (
  id INTEGER PRIMARY KEY,
  full_name VARCHAR(120) NOT NULL,
  email VARCHAR(255) NOT NULL UNIQUE
);

CREATE TABLE applications (
  id INTEGER PRIMARY KEY,
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  candidate_id INTEGER NOT NULL REFERENCES candidates(id),
  cv_file VARCHAR(255) NOT NULL,
  cover_letter TEXT,
  earliest_start DATE,
  status VARCHAR(16) NOT NULL DEFAULT 'submitted',
  applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE (job_id, candidate_id)
);
