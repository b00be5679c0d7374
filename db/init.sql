-- MariaDB init (compose: /docker-entrypoint-initdb.d). The app creates its tables itself
-- (SQLAlchemy create_all on start); this sets the charset and the app user's rights.
CREATE DATABASE IF NOT EXISTS voicechat CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
GRANT ALL PRIVILEGES ON `voicechat%`.* TO 'voice'@'%';
FLUSH PRIVILEGES;
