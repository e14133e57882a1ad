using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>One structured journal entry: <paramref name="iov"/> is a struct iovec array, each
    /// element one "FIELD=value". The non-variadic form of sd_journal_send (docs/architecture.md §10).
    /// Returns 0, or a negative errno (e.g. -ENOENT when journald is not running).</summary>
    [LibraryImport(Library, EntryPoint = "sd_journal_sendv")]
    public static partial int sd_journal_sendv(void* iov, int n);
}
