CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  display_name VARCHAR(80) NOT NULL,
  email VARCHAR(255) NOT NULL UNIQUE,
  weight_unit VARCHAR(2) NOT NULL DEFAULT 'kg'
);

CREATE TABLE exercises (
  id INTEGER PRIMARY KEY,
  name VARCHAR(120) NOT NULL UNIQUE,
  equipment VARCHAR(20) NOT NULL,
  primary_muscle VARCHAR(40) NOT NULL,
  secondary_muscle VARCHAR(40)
);

CREATE TABLE workouts (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  name VARCHAR(80) NOT NULL,
  gym VARCHAR(120),
  started_at TIMESTAMP NOT NULL,
  ended_at TIMESTAMP,
  avg_heart_rate INTEGER,
  calories INTEGER,
  notes TEXT
);

CREATE TABLE workout_sets (
  id INTEGER PRIMARY KEY,
  workout_id INTEGER NOT NULL REFERENCES workouts(id),
  exercise_id INTEGER NOT NULL REFERENCES exercises(id),
  set_number INTEGER NOT NULL,
  weight_kg DECIMAL(6, 2),
  reps INTEGER NOT NULL,
  rpe DECIMAL(3, 1),
  set_type VARCHAR(10) NOT NULL DEFAULT 'working',
  is_personal_record BOOLEAN NOT NULL DEFAULT FALSE
);
