namespace TcmuSharedVolume.Interop;

/// <summary>
/// libsystemd.so.0 (sd_notify, sd-bus, sd_journal_sendv), one declaration per function, each in its own file.
/// Only non-variadic entry points are used (docs/architecture.md §11).
/// </summary>
public static unsafe partial class LibSystemd
{
    internal const string Library = "libsystemd.so.0";
}
