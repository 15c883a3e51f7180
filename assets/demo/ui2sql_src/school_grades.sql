CREATE TABLE teachers (
  id INTEGER PRIMARY KEY,
  full_name VARCHAR(120) NOT NULL,
  email VARCHAR(255) NOT NULL UNIQUE
);

CREATE TABLE students (
  id INTEGER PRIMARY KEY,
  student_number VARCHAR(12) NOT NULL UNIQUE,
  first_name VARCHAR(80) NOT NULL,
  last_name VARCHAR(80) NOT NULL
);

CREATE TABLE course_sections (
  id INTEGER PRIMARY KEY,
  course_code VARCHAR(12) NOT NULL,
  title VARCHAR(120) NOT NULL,
  section CHAR(1) NOT NULL,
  term VARCHAR(20) NOT NULL,
  room VARCHAR(10),
  teacher_id INTEGER NOT NULL REFERENCES teachers(id),
  UNIQUE (course_code, section, term)
);

CREATE TABLE enrollments (
  section_id INTEGER NOT NULL REFERENCES course_sections(id),
  student_id INTEGER NOT NULL REFERENCES students(id),
  enrolled_on DATE NOT NULL,
  PRIMARY KEY (section_id, student_id)
);

CREATE TABLE assignments (
  id INTEGER PRIMARY KEY,
  section_id INTEGER NOT NULL REFERENCES course_sections(id),
  title VARCHAR(120) NOT NULL,
  max_points INTEGER NOT NULL,
  weight_percent DECIMAL(5, 2) NOT NULL,
  due_date DATE
);

CREATE TABLE grades (
  assignment_id INTEGER NOT NULL REFERENCES assignments(id),
  student_id INTEGER NOT NULL REFERENCES students(id),
  points DECIMAL(6, 2),
  submitted_at TIMESTAMP,
  PRIMARY KEY (assignment_id, student_id)
);
