CREATE TABLE artists (
  id INTEGER PRIMARY KEY,
  name VARCHAR(160) NOT NULL
);

CREATE TABLE albums (
  id INTEGER PRIMARY KEY,
  title VARCHAR(200) NOT NULL,
  artist_id INTEGER NOT NULL REFERENCES artists(id),
  label VARCHAR(120),
  release_year INTEGER,
  cover_url VARCHAR(500)
);

CREATE TABLE tracks (
  id INTEGER PRIMARY KEY,
  album_id INTEGER NOT NULL REFERENCES albums(id),
  track_number INTEGER NOT NULL,
  title VARCHAR(200) NOT NULL,
  duration_s INTEGER NOT NULL,
  explicit BOOLEAN NOT NULL DEFAULT FALSE,
  play_count BIGINT NOT NULL DEFAULT 0,
  UNIQUE (album_id, track_number)
);

CREATE TABLE track_artists (
  track_id INTEGER NOT NULL REFERENCES tracks(id),
  artist_id INTEGER NOT NULL REFERENCES artists(id),
  PRIMARY KEY (track_id, artist_id)
);

CREATE TABLE playlists (
  id INTEGER PRIMARY KEY,
  owner_id INTEGER NOT NULL,
  name VARCHAR(120) NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE playlist_tracks (
  playlist_id INTEGER NOT NULL REFERENCES playlists(id),
  track_id INTEGER NOT NULL REFERENCES tracks(id),
  position INTEGER NOT NULL,
  added_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (playlist_id, position)
);
