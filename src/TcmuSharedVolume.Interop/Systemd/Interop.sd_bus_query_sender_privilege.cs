using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>CAP_SYS_ADMIN from linux/capability.h: what sd-bus requires of callers of methods without SD_BUS_VTABLE_UNPRIVILEGED.</summary>
    public const int CAP_SYS_ADMIN = 21;

    /// <summary>
    /// 1 if the sender of <paramref name="call"/> has <paramref name="capability"/> in its effective
    /// set (or runs as the connection's own uid), 0 if not, negative errno on failure. The same test
    /// sd-bus applies to methods without SD_BUS_VTABLE_UNPRIVILEGED.
    /// </summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_query_sender_privilege")]
    public static partial int sd_bus_query_sender_privilege(nint call, int capability);
}
