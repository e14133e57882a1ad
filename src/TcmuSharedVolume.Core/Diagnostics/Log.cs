namespace TcmuSharedVolume.Diagnostics;

/// <summary>syslog priorities (RFC 5424), which journald keeps as PRIORITY=.</summary>
public enum LogLevel
{
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

/// <summary>
/// The daemon's one logger. Under systemd (JOURNAL_STREAM set) each line starts with the
/// "&lt;N&gt;" priority prefix that journald turns into PRIORITY=N; otherwise lines carry a
/// timestamp and the level name. Never called on the per-command hot path except for errors.
/// </summary>
public static class Log
{
    private static readonly Lock Gate = new();
    private static TextWriter _writer = Console.Error;
    private static bool _journal = Environment.GetEnvironmentVariable("JOURNAL_STREAM") is { Length: > 0 };

    public static LogLevel Level { get; set; } = LogLevel.Info;

    /// <summary>Redirects output (tests capture it).</summary>
    public static void SetWriter(TextWriter writer, bool journalPrefix)
    {
        lock (Gate)
        {
            _writer = writer;
            _journal = journalPrefix;
        }
    }

    public static bool IsEnabled(LogLevel level) => level <= Level;

    public static void Write(LogLevel level, string message)
    {
        if (!IsEnabled(level)) return;
        lock (Gate)
        {
            if (_journal)
                _writer.WriteLine($"<{(int)level}>{message}");
            else
                _writer.WriteLine($"{DateTime.Now:yyyy-MM-dd HH:mm:ss.fff} {Name(level)} {message}");
            _writer.Flush();
        }
    }

    public static void Error(string message) => Write(LogLevel.Error, message);
    public static void Warning(string message) => Write(LogLevel.Warning, message);
    public static void Notice(string message) => Write(LogLevel.Notice, message);
    public static void Info(string message) => Write(LogLevel.Info, message);
    public static void Debug(string message) => Write(LogLevel.Debug, message);

    public static bool TryParseLevel(string text, out LogLevel level)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "error" or "err" or "3": level = LogLevel.Error; return true;
            case "warning" or "warn" or "4": level = LogLevel.Warning; return true;
            case "notice" or "5": level = LogLevel.Notice; return true;
            case "info" or "6": level = LogLevel.Info; return true;
            case "debug" or "7": level = LogLevel.Debug; return true;
            default: level = LogLevel.Info; return false;
        }
    }

    private static string Name(LogLevel level) => level switch
    {
        LogLevel.Error => "ERROR",
        LogLevel.Warning => "WARN ",
        LogLevel.Notice => "NOTE ",
        LogLevel.Info => "INFO ",
        _ => "DEBUG",
    };
}
