using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>The client's addresses as the OSDs see them (what a blocklist entry names); librados strdup()s the string: free it (NativeMemory.Free).</summary>
    [LibraryImport(Library, EntryPoint = "rados_getaddrs")]
    public static partial int rados_getaddrs(nint cluster, byte** addrs);
}
