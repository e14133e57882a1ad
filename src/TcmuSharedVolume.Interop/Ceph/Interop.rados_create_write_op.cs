using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>An empty compound write operation; release it with rados_release_write_op.</summary>
    [LibraryImport(Library, EntryPoint = "rados_create_write_op")]
    public static partial nint rados_create_write_op();
}
