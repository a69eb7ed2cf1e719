-- Usernames are looked up through lower(), the form the PostgreSQL catalog shares.
CREATE INDEX users_username_lower ON users(lower(username));
