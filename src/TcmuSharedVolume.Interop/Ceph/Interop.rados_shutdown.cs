using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>After every ioctx of the cluster is destroyed.</summary>
    [LibraryImport(Library, EntryPoint = "rados_shutdown")]
    public static partial void rados_shutdown(nint cluster);
}
